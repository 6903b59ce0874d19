package routing

import (
	"testing"

	"github.com/lbd/lbd/config"
)

// FuzzDecodeState feeds arbitrary state files to the decoder: no panic;
// whatever it accepts, laid over a config file, is a valid configuration;
// and what it accepted encodes and decodes to itself.
func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"version":1,"backends":[{"url":"http://b:81","weight":2,"max_inflight":1,"draining":true}],"policy":"lc","sticky":{"enabled":true,"key":"ip"},"canary":{"backend":"http://b:81","percent":5}}`))
	f.Add([]byte(`{"version":1,"backends":[],"policy":"rr","sticky":{"key":"ip"},"canary":{},"file":{"backends":[{"url":"http://a:80","weight":1,"max_inflight":0,"protocol":"http1"}],"policy":"rr","sticky":{"key":"ip"},"canary":{}}}`))
	f.Add([]byte(`{"version":2,"file":{"pools":{}},"overlay":{"pools":{"default":{"policy":{"policy":"lc","sticky":{"enabled":true,"key":"cookie:s"}},"canary":{"backend":"http://a:80","percent":50},"backends":{"http://a:80":{"draining":true,"weight":3},"http://n:80":{"added":{"url":"http://n:80","weight":1,"max_inflight":0,"protocol":"h2c"}}}},"api":{"backends":{"http://a:80":{"removed":true}}}}}}`))
	base, err := config.Parse([]byte(`{"backends": [{"url": "http://a:80"}], "pools": {"api": {"backends": [{"url": "http://a:80"}]}}}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, _, err := DecodeState(data, FileOf(base))
		if err != nil {
			return
		}
		ov := Rebase(st.Overlay, st.File, FileOf(base))
		eff := Effective(base, ov, nil).Apply(base)
		if err := eff.Validate(); err != nil {
			t.Fatalf("accepted a state that makes an invalid configuration: %v\n%s", err, data)
		}
		again, probs, err := DecodeState(st.Encode(), FileOf(base))
		if err != nil || len(probs) > 0 {
			t.Fatalf("its own encoding does not decode cleanly: %v %v", err, probs)
		}
		if string(again.Encode()) != string(st.Encode()) {
			t.Fatalf("encoding is not stable:\n%s\n%s", st.Encode(), again.Encode())
		}
	})
}
