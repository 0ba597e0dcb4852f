// Package mirrortest holds test helpers for code that talks to container registries, made for
// pkg/mirror's tests and reusable by any package's tests that talk to registries:
//
//   - FaultProxy, an http.Handler to put in front of a registry (in-process or a real one through
//     httputil.ReverseProxy) that injects 5xx answers, 429 with Retry-After, connection resets,
//     cut-off bodies and rewritten digests, and counts requests by method and kind of path;
//   - Recorder, an http.RoundTripper that records what a client sent, to assert for instance that
//     no manifest GET (a Docker Hub pull) was made;
//   - Registry, go-containerregistry's in-memory registry with blobs kept per repository and
//     cross-repository mounts, as the CNCF distribution registry behaves.
package mirrortest
