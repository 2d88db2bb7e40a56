package actionid

import "fmt"

// MaxLen bounds an action id.
const MaxLen = 200

// Problem reports what is wrong with id, in words that name the rule, or ""
// when id is well formed. It does not allocate for a well-formed id.
func Problem(id string) string {
	switch {
	case id == "":
		return "must not be empty"
	case len(id) > MaxLen:
		return fmt.Sprintf("must be at most %d characters", MaxLen)
	}
	dots, segLen := 0, 0
	for i := 0; i < len(id); i++ {
		switch class[id[i]] {
		case char:
			segLen++
		case dot:
			if segLen == 0 {
				return "must not have empty segments between dots"
			}
			dots++
			segLen = 0
		default:
			return "may only hold letters, digits, '_', ':', '-' and '.' separators"
		}
	}
	if segLen == 0 {
		return "must not end with a dot"
	}
	if dots == 0 {
		return "must read <subject>.<verb>"
	}
	return ""
}

// Valid reports whether id is well formed.
func Valid(id string) bool { return Problem(id) == "" }

// The classes of class, which sorts bytes in one table lookup each.
const (
	invalid = iota
	char
	dot
)

var class = func() (c [256]uint8) {
	for b := range c {
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '_', b == ':', b == '-':
			c[b] = char
		case b == '.':
			c[b] = dot
		}
	}
	return c
}()
