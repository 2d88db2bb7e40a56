// Package authroutes is the route table of forward auth: an ordered list of
// rules, written by hand in YAML, that says which actions a request needs
// from its token, by method and path. The first rule that matches decides;
// a request no rule matches is denied.
//
// A file looks like this:
//
//	routes:
//	  - method: GET
//	    path: /api/articles/{id}
//	    actions: [api::article.article.findOne]
//	  - method: "*"
//	    path: /api/health
//	    public: true
//
// A Table is immutable once parsed and safe for concurrent use; a reload
// parses a new Table and swaps it in whole.
package authroutes
