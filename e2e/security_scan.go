package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"k8s.io/client-go/rest"
)

// Credential is a secret value the leak scanner looks for, and what to call it in a report
// (never the value itself).
type Credential struct {
	Name  string
	Value string
}

// Leak is one credential found in one place, and how it was encoded there.
type Leak struct {
	Credential string // Credential.Name
	Where      string
	Encoding   string // "raw", "base64", "base64url", or "base64 inside base64" ...
}

func (l Leak) String() string {
	return fmt.Sprintf("%s found in %s (%s)", l.Credential, l.Where, l.Encoding)
}

// minCredentialLen keeps the scanner from reporting short values that appear by chance.
const minCredentialLen = 8

// base64Token is a run of characters that may be a base64 (standard or URL) encoding worth
// decoding to look inside: a Secret's data, a dockerconfigjson's auth, a JWT segment.
var base64Token = regexp.MustCompile(`[A-Za-z0-9+/_-]{16,}={0,2}`)

// Scanner finds credentials in text, however they are encoded: as they are, in base64 (standard
// or URL alphabet, at any alignment, so also inside the encoding of a larger text such as
// user:password or a whole Docker config.json), and in base64 inside base64 (a config.json's
// auth field inside a Secret's encoded data).
type Scanner struct {
	creds []Credential
	// needles[i] are the strings whose presence reveals creds[i], each with its encoding.
	needles [][]needle
}

type needle struct {
	s        string
	encoding string
}

// NewScanner builds a Scanner for creds; empty and short values are an error, since they
// would match by chance.
func NewScanner(creds ...Credential) (*Scanner, error) {
	s := &Scanner{}
	for _, c := range creds {
		if len(c.Value) < minCredentialLen {
			return nil, fmt.Errorf("credential %s is %d characters long: too short to scan for (at least %d)", c.Name, len(c.Value), minCredentialLen)
		}
		ns := []needle{{c.Value, "raw"}}
		for _, enc := range []struct {
			name string
			e    *base64.Encoding
		}{{"base64", base64.StdEncoding}, {"base64url", base64.URLEncoding}} {
			for _, v := range base64Variants(enc.e, c.Value) {
				ns = append(ns, needle{v, enc.name})
			}
		}
		s.creds = append(s.creds, c)
		s.needles = append(s.needles, ns)
	}
	return s, nil
}

// base64Variants returns, for each of the three alignments the value can have inside a longer
// encoded text, the part of its encoding that does not depend on the bytes around it.
func base64Variants(enc *base64.Encoding, v string) []string {
	var out []string
	n := len(v)
	for k := range 3 {
		e := enc.EncodeToString(append(make([]byte, k), v...))
		start := (8*k + 5) / 6 // first character made of v's bits only
		end := 8 * (k + n) / 6 // last character made of v's bits only, exclusive
		if end > start {
			out = append(out, e[start:end])
		}
	}
	return out
}

// Scan reports every credential found in data, which is named where in the report.
func (s *Scanner) Scan(where string, data []byte) []Leak {
	found := map[string]Leak{}
	s.scan(where, data, "", 2, found)
	out := make([]Leak, 0, len(found))
	for _, l := range found {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func (s *Scanner) scan(where string, data []byte, outer string, depth int, found map[string]Leak) {
	for i, c := range s.creds {
		if _, ok := found[c.Name]; ok {
			continue
		}
		for _, n := range s.needles[i] {
			if bytes.Contains(data, []byte(n.s)) {
				found[c.Name] = Leak{Credential: c.Name, Where: where, Encoding: n.encoding + outer}
				break
			}
		}
	}
	if depth == 0 || len(found) == len(s.creds) {
		return
	}
	for _, tok := range base64Token.FindAll(data, -1) {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if dec, err := enc.DecodeString(string(tok)); err == nil {
				s.scan(where, dec, " inside base64"+outer, depth-1, found)
				break
			}
		}
	}
}

// DockerConfigCredentials returns the secrets of a Docker config.json (a dockerconfigjson
// Secret's payload): each registry's password (also from its auth field), identity token and
// registry token, named prefix/<registry>/<field>.
func DockerConfigCredentials(prefix string, data []byte) ([]Credential, error) {
	var cfg struct {
		Auths map[string]struct {
			Username      string `json:"username"`
			Password      string `json:"password"`
			Auth          string `json:"auth"`
			IdentityToken string `json:"identitytoken"`
			RegistryToken string `json:"registrytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("parsing %s as a Docker config.json: %w", prefix, err)
	}
	var out []Credential
	add := func(registry, field, v string) {
		if v != "" {
			out = append(out, Credential{Name: prefix + "/" + registry + "/" + field, Value: v})
		}
	}
	for registry, a := range cfg.Auths {
		password := a.Password
		if dec, err := base64.StdEncoding.DecodeString(a.Auth); err == nil && password == "" {
			if _, p, ok := strings.Cut(string(dec), ":"); ok {
				password = p
			}
		}
		add(registry, "password", password)
		add(registry, "identitytoken", a.IdentityToken)
		add(registry, "registrytoken", a.RegistryToken)
	}
	return out, nil
}

// RESTConfigCredentials returns the secrets of a client configuration (a member's kubeconfig
// as the hub parses it): its bearer token, password and client key (by the first line of the
// key's PEM body, which is how a key shows in a log or a page, escaped or not), named
// prefix/<field>.
func RESTConfigCredentials(prefix string, cfg *rest.Config) ([]Credential, error) {
	var out []Credential
	if cfg.BearerToken != "" {
		out = append(out, Credential{Name: prefix + "/token", Value: cfg.BearerToken})
	}
	if cfg.Password != "" {
		out = append(out, Credential{Name: prefix + "/password", Value: cfg.Password})
	}
	if len(cfg.KeyData) > 0 {
		line, err := pemBodyLine(cfg.KeyData)
		if err != nil {
			return nil, fmt.Errorf("%s client key: %w", prefix, err)
		}
		out = append(out, Credential{Name: prefix + "/client-key", Value: line})
	}
	return out, nil
}

// pemBodyLine returns the longest base64 line of a PEM block's body.
func pemBodyLine(data []byte) (string, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return "", fmt.Errorf("no PEM block")
	}
	body := base64.StdEncoding.EncodeToString(b.Bytes)
	// PEM wraps its body at 64 characters; the first full line is the same in any PEM text
	// of these bytes.
	if len(body) > 64 {
		return body[:64], nil
	}
	return body, nil
}
