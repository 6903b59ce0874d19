package ctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// client is one invocation's connection to the admin API.
type client struct {
	out, errw io.Writer
	env       Env
	base      string // http://host:port
	token     string
	json      bool // -o json
}

// apiError is the admin API's refusal: its status and its error text.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.status, http.StatusText(e.status), e.msg)
}

func (c *client) request(ctx context.Context, method, path string, q url.Values) (*http.Request, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, fmt.Errorf("-admin %s: %w", c.base, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// call makes one call and returns its JSON body, or the API's error.
func (c *client) call(method, path string, q url.Values) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := c.request(ctx, method, path, q)
	if err != nil {
		return nil, err
	}
	resp, err := c.env.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("lbd's admin API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return nil, errorOf(resp.StatusCode, body)
	}
	return body, nil
}

// errorOf reads the API's {"error": ...} (and its "problems", one a line).
func errorOf(status int, body []byte) error {
	var e struct {
		Error    string   `json:"error"`
		Problems []string `json:"problems"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(body))
	}
	if len(e.Problems) > 1 {
		e.Error += "\n  " + strings.Join(e.Problems, "\n  ")
	}
	return &apiError{status, e.Error}
}

// callInto makes a call and decodes its answer into v; with -o json it
// prints the answer as it came instead (v is then left as decoded too).
func (c *client) callInto(method, path string, q url.Values, v any) error {
	body, err := c.call(method, path, q)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s %s: the answer is not what lbd ctl expects: %w", method, path, err)
	}
	return nil
}

func (c *client) printJSON(body []byte) error {
	var buf bytes.Buffer
	if json.Indent(&buf, body, "", "  ") != nil {
		buf.Reset()
		buf.Write(body)
	}
	_, err := fmt.Fprintln(c.out, strings.TrimRight(buf.String(), "\n"))
	return err
}

// stream opens an SSE endpoint and calls each with every message's data
// until the stream ends; each returns false to stop.
func (c *client) stream(path string, q url.Values, each func([]byte) (bool, error)) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := c.request(ctx, http.MethodGet, path, q)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.env.Client.Do(req)
	if err != nil {
		return fmt.Errorf("lbd's admin API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return errorOf(resp.StatusCode, body)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	typ := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := []byte(strings.TrimPrefix(line, "data: "))
			if typ == "dropped" {
				fmt.Fprintf(c.errw, "lbd ctl: the stream fell behind; lbd dropped events: %s\n", data)
				continue
			}
			more, err := each(data)
			if err != nil || !more {
				return err
			}
		case line == "":
			typ = ""
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: stream broken: %w", path, err)
	}
	return nil
}
