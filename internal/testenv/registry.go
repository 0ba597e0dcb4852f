package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// RegistryOptions configure a registry started by StartRegistry.
type RegistryOptions struct {
	// Name appears in log file names; default "registry".
	Name string
	// Auth turns on htpasswd (bcrypt) basic auth with Username and Password.
	Auth bool
	// Username and Password for Auth; default "tester" and a random password.
	Username, Password string
	// Users are further accounts for Auth, by name, written into the same htpasswd; an empty
	// password gets a random one. distribution's htpasswd grants every account the same rights
	// (there are no read-only users), but distinct accounts let tests tell which credential
	// went where, e.g. a pull account for members and a push account for the hub.
	Users map[string]string
	// TLS serves HTTPS with a certificate from a CA made for the test (Registry.CA).
	TLS bool
}

// Registry is a CNCF distribution registry running as a process on 127.0.0.1.
type Registry struct {
	Name     string
	Host     string // 127.0.0.1:port, what image references use
	URL      string // http(s)://127.0.0.1:port
	Username string // empty without auth
	Password string
	// Users holds every account of the htpasswd by name, Username's included; nil without auth.
	Users map[string]string
	CA    *CA // nil without TLS

	t         T
	bin       string
	dir       string // configuration, htpasswd and storage: kept across Stop/Start
	config    string
	logPath   string
	accessLog string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error // closed over the process's exit; nil when not running
}

// StartRegistry starts a distribution registry and stops it when the test ends.
func StartRegistry(t T, opts RegistryOptions) *Registry {
	t.Helper()
	r, err := newRegistry(t, opts)
	if err != nil {
		t.Fatalf("starting registry: %v", err)
	}
	t.Cleanup(r.Stop)
	if err := r.Start(); err != nil {
		t.Fatalf("starting registry %s: %v", r.Name, err)
	}
	return r
}

func newRegistry(t T, opts RegistryOptions) (*Registry, error) {
	assets, err := Assets()
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = "registry"
	}
	r := &Registry{Name: opts.Name, t: t, bin: filepath.Join(assets, "registry"), dir: t.TempDir()}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r.Host = fmt.Sprintf("127.0.0.1:%d", port)
	scheme := "http"

	cfg := map[string]any{
		"version": "0.1",
		"log":     map[string]any{"level": "info", "formatter": "text"},
		"storage": map[string]any{
			"filesystem": map[string]any{"rootdirectory": filepath.Join(r.dir, "storage")},
			"delete":     map[string]any{"enabled": true},
			"maintenance": map[string]any{
				"uploadpurging": map[string]any{"enabled": false},
			},
		},
		"http": map[string]any{"addr": r.Host, "secret": randomHex(16)},
	}
	if opts.TLS {
		ca, err := NewCA()
		if err != nil {
			return nil, err
		}
		r.CA = ca
		certFile, keyFile := filepath.Join(r.dir, "server.crt"), filepath.Join(r.dir, "server.key")
		if err := os.WriteFile(certFile, ca.ServerCertPEM, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(keyFile, ca.ServerKeyPEM, 0o600); err != nil {
			return nil, err
		}
		cfg["http"].(map[string]any)["tls"] = map[string]any{"certificate": certFile, "key": keyFile}
		scheme = "https"
	}
	if opts.Auth {
		r.Username, r.Password = opts.Username, opts.Password
		if r.Username == "" {
			r.Username = "tester"
		}
		if r.Password == "" {
			r.Password = randomHex(12)
		}
		r.Users = map[string]string{r.Username: r.Password}
		for user, password := range opts.Users {
			if user == "" || strings.Contains(user, ":") {
				return nil, fmt.Errorf("invalid registry user name %q", user)
			}
			if _, dup := r.Users[user]; dup {
				return nil, fmt.Errorf("registry user %q is given twice", user)
			}
			if password == "" {
				password = randomHex(12)
			}
			r.Users[user] = password
		}
		var htpasswdData []byte
		for user, password := range r.Users {
			hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
			if err != nil {
				return nil, fmt.Errorf("hashing the password of %s: %w", user, err)
			}
			htpasswdData = fmt.Appendf(htpasswdData, "%s:%s\n", user, hash)
		}
		htpasswd := filepath.Join(r.dir, "htpasswd")
		if err := os.WriteFile(htpasswd, htpasswdData, 0o600); err != nil {
			return nil, err
		}
		cfg["auth"] = map[string]any{"htpasswd": map[string]any{"realm": "image-cloner-test", "path": htpasswd}}
	}
	r.URL = scheme + "://" + r.Host
	// JSON is YAML, and needs no YAML library here.
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	r.config = filepath.Join(r.dir, "config.yml")
	if err := os.WriteFile(r.config, data, 0o600); err != nil {
		return nil, err
	}
	_, r.logPath = logFile(t, r.Name)
	_, r.accessLog = logFile(t, r.Name+"-access")
	return r, nil
}

// Start starts (or restarts after Stop) the registry process on the same address and storage,
// and waits until it answers /v2/.
func (r *Registry) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(r.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	accf, err := os.OpenFile(r.accessLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		_ = logf.Close()
		return err
	}
	cmd := exec.Command(r.bin, "serve", r.config)
	cmd.Stdout, cmd.Stderr = accf, logf
	// No tracing exporter: there is nothing to export to, and it would log connection errors.
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_SDK_DISABLED=true")
	// Die with the test binary even if it is killed before its cleanups run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		_ = accf.Close()
		return fmt.Errorf("starting %s: %w", r.bin, err)
	}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		_ = accf.Close()
		exited <- err
		close(exited)
	}()
	r.cmd, r.exited = cmd, exited

	client := &http.Client{Timeout: 2 * time.Second, Transport: r.Transport()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		resp, err := client.Get(r.URL + "/v2/")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		select {
		case err := <-exited:
			r.cmd, r.exited = nil, nil
			return fmt.Errorf("registry exited before it was ready (%v); last log lines:\n%s", err, tail(r.logPath, 20))
		case <-ctx.Done():
			return fmt.Errorf("registry did not answer %s/v2/ within 30s; last log lines:\n%s", r.URL, tail(r.logPath, 20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop kills the registry process; its storage stays, so Start brings the same content back.
func (r *Registry) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	r.cmd, r.exited = nil, nil
}

// GarbageCollect runs the registry's own garbage collector over its storage, as an operator
// would: the registry is stopped (distribution's GC must not run beside a serving registry),
// `registry garbage-collect` runs, with --delete-untagged when deleteUntagged is true (what
// quay.io, Harbor and ECR lifecycle rules do to manifests no tag points to), and the registry
// starts again on the same address. It returns the collector's output.
func (r *Registry) GarbageCollect(deleteUntagged bool) (string, error) {
	r.Stop()
	args := []string{"garbage-collect"}
	if deleteUntagged {
		args = append(args, "--delete-untagged")
	}
	cmd := exec.Command(r.bin, append(args, r.config)...)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_SDK_DISABLED=true")
	out, err := cmd.CombinedOutput()
	if serr := r.Start(); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return string(out), fmt.Errorf("registry garbage-collect: %w\n%s", err, out)
	}
	return string(out), nil
}

// Transport is an http.RoundTripper that trusts the registry's CA when it serves TLS.
func (r *Registry) Transport() http.RoundTripper {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if r.CA != nil {
		tr.TLSClientConfig = r.CA.ClientTLSConfig()
	} else {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return tr
}

// DockerConfigJSON returns a Docker config.json (the payload of a kubernetes.io/dockerconfigjson
// Secret) holding the registry's credentials (Username), or no auths without Auth.
func (r *Registry) DockerConfigJSON() []byte {
	data, _ := r.DockerConfigJSONFor(r.Username)
	return data
}

// DockerConfigJSONFor returns a Docker config.json holding the credentials of account user
// (Username or one of Users), or no auths when user is empty. It fails for an unknown user.
func (r *Registry) DockerConfigJSONFor(user string) ([]byte, error) {
	auths := map[string]any{}
	if user != "" {
		password, ok := r.Users[user]
		if !ok {
			return nil, fmt.Errorf("registry %s has no user %q", r.Name, user)
		}
		auths[r.Host] = map[string]string{
			"username": user,
			"password": password,
			"auth":     base64.StdEncoding.EncodeToString([]byte(user + ":" + password)),
		}
	}
	return json.Marshal(map[string]any{"auths": auths})
}

// Request is one line of the registry's access log.
type Request struct {
	Method string
	Path   string
	Status int
}

var accessLine = regexp.MustCompile(`"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3}) `)

// Requests returns the requests the registry has served so far, from its access log: the count
// at the registry itself, whatever client made them.
func (r *Registry) Requests() ([]Request, error) {
	f, err := os.Open(r.accessLog)
	if err != nil {
		return nil, fmt.Errorf("reading access log: %w", err)
	}
	defer func() { _ = f.Close() }()
	var out []Request
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		m := accessLine.FindStringSubmatch(s.Text())
		if m == nil {
			continue
		}
		var status int
		_, _ = fmt.Sscanf(m[3], "%d", &status)
		out = append(out, Request{Method: m[1], Path: m[2], Status: status})
	}
	return out, s.Err()
}

// CountRequests counts the requests whose method matches (empty: any) and whose path contains
// every one of the given fragments, e.g. CountRequests("PUT", "/manifests/").
func (r *Registry) CountRequests(method string, fragments ...string) (int, error) {
	reqs, err := r.Requests()
	if err != nil {
		return 0, err
	}
	n := 0
next:
	for _, q := range reqs {
		if method != "" && q.Method != method {
			continue
		}
		for _, f := range fragments {
			if !strings.Contains(q.Path, f) {
				continue next
			}
		}
		n++
	}
	return n, nil
}

// CountManifestPuts counts the manifest PUTs into repository (a path, "backups/app") other
// than those of digest tags (digest-sha256-<hex>), which the copy engine adds beside each
// copy's own tag, and of referrers indexes (sha256-<hex>, the referrers tag schema's tag):
// the copies, as a person counts them.
func (r *Registry) CountManifestPuts(repository string) (int, error) {
	manifests := "/v2/" + strings.TrimPrefix(repository, "/") + "/manifests/"
	all, err := r.CountRequests("PUT", manifests)
	if err != nil {
		return 0, err
	}
	for _, notACopy := range []string{"digest-sha256-", "sha256-"} {
		n, err := r.CountRequests("PUT", manifests+notACopy)
		if err != nil {
			return 0, err
		}
		all -= n
	}
	return all, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
