package main

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestRow(t *testing.T) {
	var b strings.Builder
	row(&b, "a\tb", "line\nbreak", "\x1b[31mred", "")
	if got, want := b.String(), "a b\tline break\t[31mred\t-\n"; got != want {
		t.Errorf("row = %q, want %q", got, want)
	}
}

func TestRelative(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(d)) }
	for _, tt := range []struct {
		t    *timestamppb.Timestamp
		want string
	}{
		{nil, "never"},
		{at(7*day - time.Second), "in 6 days"},
		{at(7 * day), "in 7 days"},
		{at(day), "in 1 day"},
		{at(90 * day), "in 90 days"},
		{at(200 * day), "in 6 months"},
		{at(3 * 365 * day), "in 3 years"},
		{at(30 * time.Second), "in less than a minute"},
		{at(90 * time.Minute), "in 1 hour"},
		{at(-10 * time.Second), "just now"},
		{at(-5 * time.Minute), "5 minutes ago"},
		{at(-49 * time.Hour), "2 days ago"},
	} {
		if got := relative(tt.t, now, "never"); got != tt.want {
			t.Errorf("relative(%v) = %q, want %q", tt.t.AsTime().Sub(now), got, tt.want)
		}
	}
}

// TestCollect: a listing follows next-page tokens until the last page, or
// until it has limit items, asking for no more than it still needs.
func TestCollect(t *testing.T) {
	// pages serves 0..n-1 in pages of at most 3; the page token is the
	// index of the first item.
	pages := func(n int, asked *[]int32) func(context.Context, int32, string) ([]int, string, error) {
		return func(_ context.Context, size int32, token string) ([]int, string, error) {
			*asked = append(*asked, size)
			start := 0
			if token != "" {
				start, _ = strconv.Atoi(token)
			}
			end := min(start+min(int(size), 3), n)
			var items []int
			for i := start; i < end; i++ {
				items = append(items, i)
			}
			next := ""
			if end < n {
				next = strconv.Itoa(end)
			}
			return items, next, nil
		}
	}
	for _, tt := range []struct {
		name     string
		n, limit int
		want     int
		asked    []int32
	}{
		{"AllPages", 8, 0, 8, []int32{1000, 1000, 1000}},
		{"Empty", 0, 0, 0, []int32{1000}},
		{"LimitWithinAPage", 8, 2, 2, []int32{2}},
		{"LimitAcrossPages", 8, 5, 5, []int32{5, 2}},
		{"LimitBeyondTheEnd", 4, 10, 4, []int32{10, 7}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var asked []int32
			got, err := collect(context.Background(), tt.limit, pages(tt.n, &asked))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want || !slices.Equal(asked, tt.asked) {
				t.Errorf("collect: %v items after asking for pages of %v; want %d items, pages of %v", got, asked, tt.want, tt.asked)
			}
			for i, v := range got {
				if v != i {
					t.Fatalf("items out of order: %v", got)
				}
			}
		})
	}
}
