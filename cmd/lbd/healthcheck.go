package main

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// healthcheck is `lbd -healthcheck URL`: one GET, exit 0 on 200 and 1
// otherwise. It is the Docker HEALTHCHECK of the image, which has no shell
// and no curl (distroless static): the binary probes its own admin
// listener's /healthz (open without the admin token), so the image needs
// nothing else.
func healthcheck(url string, stdout, stderr io.Writer) int {
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(stderr, "lbd -healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "lbd -healthcheck: %s: %s %s\n", url, resp.Status, body)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %s\n", url, resp.Status)
	return 0
}
