// Package secretformat states the format of tokend's secrets once, for the
// service, which generates and recognises them, and for the client package,
// which recognises them offline so that a malformed string costs no call.
//
// A secret reads <prefix>_<body><checksum>: the body is BodyLen base62
// characters (43 × log2(62) ≈ 256.03 bits of randomness) and the checksum
// is the CRC-32 (IEEE) of "<prefix>_<body>" written as ChecksumLen base62
// digits, so that a typo or a random string is rejected without touching
// the store and secret scanners can recognise tokens offline. The prefix is
// inside the checksum so that adding or dropping a character of it (tkd_ ↔
// tkda_) cannot turn a secret of one kind into a well-formed one of the
// other. Nothing here allocates.
package secretformat
