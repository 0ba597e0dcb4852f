package app

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// registryTransport returns the transport for registry connections: go-containerregistry's
// default, trusting the system's certificate authorities plus those in the PEM bundle caFile
// (registries with a private CA). Only registry connections trust them, not the API servers.
func registryTransport(caFile string) (http.RoundTripper, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading --registry-ca-file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		// No system pool (some minimal images): the bundle alone is trusted.
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("--registry-ca-file %s holds no PEM certificate", caFile)
	}
	base, ok := remote.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("go-containerregistry's default transport is a %T, not an *http.Transport", remote.DefaultTransport)
	}
	t := base.Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return t, nil
}
