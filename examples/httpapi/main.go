// Command httpapi is an example backend: a small articles API whose routes
// are guarded by tokend's HTTP middleware, each route needing one action
// named the way Strapi names them (GET list → find, GET one → findOne,
// POST → create, PUT → update, DELETE → delete).
//
// It registers its actions with tokend at start, then serves:
//
//	TOKEND_TOKEN=tkda_… httpapi -tokend 127.0.0.1:9090 -listen 127.0.0.1:8081
//	curl -H "Authorization: Bearer tkd_…" http://127.0.0.1:8081/api/articles
//
// TOKEND_TOKEN is an admin token holding tokend.token.introspect and
// tokend.action.register.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/tokend/tokend/client"
	tokendv1 "github.com/tokend/tokend/gen/tokend/v1"
)

// The actions of the articles API, as registered with tokend.
const (
	actionFind    = "api::article.article.find"
	actionFindOne = "api::article.article.findOne"
	actionCreate  = "api::article.article.create"
	actionUpdate  = "api::article.article.update"
	actionDelete  = "api::article.article.delete"
)

var catalog = []*tokendv1.Action{
	{Id: actionFind, Description: "List articles"},
	{Id: actionFindOne, Description: "Read an article"},
	{Id: actionCreate, Description: "Write an article"},
	{Id: actionUpdate, Description: "Edit an article"},
	{Id: actionDelete, Description: "Delete an article"},
}

func main() {
	tokendAddr := flag.String("tokend", "127.0.0.1:9090", "tokend's gRPC `address`")
	listen := flag.String("listen", "127.0.0.1:8081", "`address` to serve the articles API on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	if err := run(ctx, *tokendAddr, os.Getenv("TOKEND_TOKEN"), lis); err != nil {
		log.Fatal(err)
	}
}

// run registers the actions, then serves the API on lis until ctx is done.
func run(ctx context.Context, tokendAddr, secret string, lis net.Listener) error {
	defer lis.Close()
	// Loopback or a trusted network: use client.WithTLS otherwise.
	c, err := client.Dial(tokendAddr, client.WithToken(secret), client.WithInsecure())
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.API().RegisterActions(ctx, &tokendv1.RegisterActionsRequest{Actions: catalog}); err != nil {
		return fmt.Errorf("register actions: %w", err)
	}
	v, err := client.NewVerifier(c)
	if err != nil {
		return err
	}
	defer v.Close()
	srv := &http.Server{Handler: newAPI(v), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// article is the resource the API serves.
type article struct {
	ID     int    `json:"id"`
	Title  string `json:"title"`
	Author string `json:"author"` // the name of the token that wrote it
}

// articles is an in-memory store, safe for concurrent use.
type articles struct {
	mu     sync.Mutex
	nextID int
	byID   map[int]article
}

// newAPI returns the articles API, each route guarded by the action it
// needs.
func newAPI(v *client.Verifier) http.Handler {
	a := &articles{nextID: 1, byID: map[int]article{}}
	need := func(action string, h http.HandlerFunc) http.Handler {
		return client.HTTPMiddleware(v, func(*http.Request) []string { return []string{action} })(h)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /api/articles", need(actionFind, a.list))
	mux.Handle("GET /api/articles/{id}", need(actionFindOne, a.get))
	mux.Handle("POST /api/articles", need(actionCreate, a.create))
	mux.Handle("PUT /api/articles/{id}", need(actionUpdate, a.update))
	mux.Handle("DELETE /api/articles/{id}", need(actionDelete, a.remove))
	return mux
}

func (a *articles) list(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	out := make([]article, 0, len(a.byID))
	for id := 1; id < a.nextID; id++ {
		if art, ok := a.byID[id]; ok {
			out = append(out, art)
		}
	}
	a.mu.Unlock()
	reply(w, http.StatusOK, map[string]any{"data": out})
}

func (a *articles) get(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	art, ok := a.byID[pathID(r)]
	a.mu.Unlock()
	if !ok {
		reply(w, http.StatusNotFound, map[string]string{"error": "no such article"})
		return
	}
	reply(w, http.StatusOK, map[string]any{"data": art})
}

func (a *articles) create(w http.ResponseWriter, r *http.Request) {
	art, ok := readArticle(w, r)
	if !ok {
		return
	}
	a.mu.Lock()
	art.ID = a.nextID
	a.nextID++
	a.byID[art.ID] = art
	a.mu.Unlock()
	reply(w, http.StatusCreated, map[string]any{"data": art})
}

func (a *articles) update(w http.ResponseWriter, r *http.Request) {
	art, ok := readArticle(w, r)
	if !ok {
		return
	}
	a.mu.Lock()
	art.ID = pathID(r)
	_, exists := a.byID[art.ID]
	if exists {
		a.byID[art.ID] = art
	}
	a.mu.Unlock()
	if !exists {
		reply(w, http.StatusNotFound, map[string]string{"error": "no such article"})
		return
	}
	reply(w, http.StatusOK, map[string]any{"data": art})
}

func (a *articles) remove(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	_, exists := a.byID[pathID(r)]
	delete(a.byID, pathID(r))
	a.mu.Unlock()
	if !exists {
		reply(w, http.StatusNotFound, map[string]string{"error": "no such article"})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// readArticle decodes the request body; the author is the verified token.
func readArticle(w http.ResponseWriter, r *http.Request) (article, bool) {
	var in struct {
		Title string `json:"title"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || in.Title == "" {
		reply(w, http.StatusBadRequest, map[string]string{"error": `want {"title": "…"}`})
		return article{}, false
	}
	res, _ := client.FromContext(r.Context())
	return article{Title: in.Title, Author: res.Name}, true
}

func pathID(r *http.Request) int {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		return -1
	}
	return id
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
