package mirror

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Kind sorts errors by what a person (or a controller) should do about them. Classify finds the
// Kind of any error the Mirror returns.
type Kind int

// The kinds of errors. Their String forms are usable as Kubernetes condition reasons.
const (
	// KindOther is anything not listed below, including a cancelled context.
	KindOther Kind = iota
	// KindNotFound: the image, tag or repository does not exist.
	KindNotFound
	// KindUnauthorized: the registry refused the credentials (401 or 403), or wants some.
	KindUnauthorized
	// KindRateLimited: the registry answered 429 for longer than the Mirror is willing to wait.
	KindRateLimited
	// KindUnreachable: no answer (DNS, connection, TLS, timeout) or 5xx, after the retries.
	KindUnreachable
	// KindSchema1: the destination registry refused a schema 1 manifest.
	KindSchema1
	// KindDigestMismatch: the destination ended up with another digest than the source.
	KindDigestMismatch
	// KindInvalid: a registry refused the request as malformed or unsupported, or sent a
	// manifest or image config that cannot be parsed.
	KindInvalid
)

var kindNames = map[Kind]string{
	KindOther:          "Other",
	KindNotFound:       "NotFound",
	KindUnauthorized:   "Unauthorized",
	KindRateLimited:    "RateLimited",
	KindUnreachable:    "Unreachable",
	KindSchema1:        "Schema1",
	KindDigestMismatch: "DigestMismatch",
	KindInvalid:        "Invalid",
}

// String returns the kind's name in CamelCase, e.g. "RateLimited".
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ErrSchema1 matches (errors.Is) every *Schema1Error.
var ErrSchema1 = errors.New("schema 1 manifest refused")

// Schema1Error says the destination registry would not store a schema 1 manifest. Schema 1 was
// deprecated in 2017 and distribution v3 no longer accepts it, so such images cannot be copied
// there at all: https://docs.docker.com/engine/deprecated/#pushing-and-pulling-with-image-manifest-v2-schema-1
type Schema1Error struct {
	// Source is the image that was being copied.
	Source string
	// Destination is the registry that refused it.
	Destination string
	// Reason is what the registry answered.
	Reason string

	err error
}

func (e *Schema1Error) Error() string {
	return fmt.Sprintf("schema 1 manifest of %s refused by destination registry %s: %s; "+
		"schema 1 is deprecated: ask the image's publisher for a schema 2/OCI image or pin a newer tag",
		e.Source, e.Destination, e.Reason)
}

// Is makes errors.Is(err, ErrSchema1) true.
func (e *Schema1Error) Is(target error) bool { return target == ErrSchema1 }

// Unwrap returns the registry's error.
func (e *Schema1Error) Unwrap() error { return e.err }

// RateLimitedError says a registry answered 429 Too Many Requests and asked to wait longer than
// the Mirror's maximum retry delay (or kept answering 429). Requeue the work after RetryAfter.
type RateLimitedError struct {
	// RetryAfter is how long the registry asked to wait; 0 when it did not say.
	RetryAfter time.Duration
	// Registry is the host that is rate limiting.
	Registry string
	// Limit is the quota the registry reported with the 429, if it did.
	Limit *RateLimit
}

func (e *RateLimitedError) Error() string {
	wait := "later"
	if e.RetryAfter > 0 {
		wait = "in " + e.RetryAfter.String()
	}
	msg := fmt.Sprintf("registry %s is rate limiting requests (429 Too Many Requests): retry %s", e.Registry, wait)
	if e.Limit != nil && e.Limit.Limit > 0 {
		msg += fmt.Sprintf(" (quota %d per %s)", e.Limit.Limit, e.Limit.Window)
	}
	return msg + ", or give credentials for it to get a larger quota"
}

// DigestMismatchError says the destination registry holds another digest than the source after
// the copy, i.e. it changed the manifest (conversion, re-serialization) or something else wrote
// the same tag at the same time.
type DigestMismatchError struct {
	// Reference is the destination reference.
	Reference string
	// Want is the source's digest, Got the destination's.
	Want, Got v1.Hash
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("destination %s has digest %s but the source has %s: the destination registry changed the manifest "+
		"or another writer replaced the tag; check that the registry stores manifests unchanged and retry",
		e.Reference, e.Got, e.Want)
}

// Classify tells what kind of failure err is, looking through wrapped errors. Classify(nil) is
// KindOther.
func Classify(err error) Kind {
	if err == nil {
		return KindOther
	}
	var s1 *Schema1Error
	var dm *DigestMismatchError
	var rl *RateLimitedError
	var te *transport.Error
	var bad *name.ErrBadName
	var unsupported *unsupportedError
	var notListed *notListedError
	switch {
	case errors.As(err, &s1):
		return KindSchema1
	case errors.As(err, &dm):
		return KindDigestMismatch
	case errors.As(err, &rl):
		return KindRateLimited
	case errors.As(err, &te):
		return classifyStatus(te)
	case errors.As(err, &bad), errors.As(err, &unsupported), errors.As(err, &notListed), isMalformed(err):
		return KindInvalid
	case errors.Is(err, context.Canceled):
		return KindOther
	case isNetworkError(err):
		return KindUnreachable
	}
	return KindOther
}

func classifyStatus(te *transport.Error) Kind {
	for _, d := range te.Errors {
		switch d.Code {
		case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
			return KindUnauthorized
		case transport.TooManyRequestsErrorCode:
			return KindRateLimited
		case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
			return KindNotFound
		case transport.ManifestInvalidErrorCode, transport.NameInvalidErrorCode, transport.TagInvalidErrorCode,
			transport.DigestInvalidErrorCode, transport.SizeInvalidErrorCode, transport.UnsupportedErrorCode,
			transport.ManifestBlobUnknownErrorCode:
			return KindInvalid
		}
	}
	switch s := te.StatusCode; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return KindUnauthorized
	case s == http.StatusNotFound:
		return KindNotFound
	case s == http.StatusTooManyRequests:
		return KindRateLimited
	case s == http.StatusRequestTimeout || s >= 500:
		return KindUnreachable
	case s >= 400:
		return KindInvalid
	}
	return KindOther
}

// isNetworkError reports failures to get any answer: DNS, refused or reset connections, TLS,
// timeouts (including our stall timeout and a context deadline).
func isNetworkError(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	var op *net.OpError
	var dns *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &op) || errors.As(err, &dns) || (errors.As(err, &ne) && ne.Timeout()) ||
		errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid)
}

// isMalformed reports errors from decoding a manifest or image config a registry sent: JSON
// errors, and io.EOF that is not a connection's (an empty body decoded), which would otherwise
// pass for a network failure.
func isMalformed(err error) bool {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var ue *url.Error
	var op *net.OpError
	return errors.As(err, &syntax) || errors.As(err, &typ) ||
		(errors.Is(err, io.EOF) && !errors.As(err, &ue) && !errors.As(err, &op))
}

// Side is the end of a copy an error came from: whose registry, credentials or network a
// person should check. Both ends often live on one registry host (quay.io/org/app copied to
// quay.io/acme; Docker Hub images copied to docker.io/acme), so the Mirror reads the side from
// the request that failed, never from a host name alone.
type Side int

const (
	// SideUnknown: the error did not come from a registry request (a cancelled context, an
	// invalid argument), so neither end is to blame.
	SideUnknown Side = iota
	// SideSource: the registry the image is copied from.
	SideSource
	// SideDestination: the registry the image is copied to.
	SideDestination
)

// String returns "Source", "Destination" or "Unknown".
func (s Side) String() string {
	switch s {
	case SideSource:
		return "Source"
	case SideDestination:
		return "Destination"
	}
	return "Unknown"
}

// SideOf tells which end of a copy err came from, looking through wrapped errors. Every error
// Resolve (always SideSource), Present (always SideDestination) and Copy return from a registry
// request carries its side; a Schema1Error or DigestMismatchError is SideDestination's.
//
// During Copy the side is the registry and repository of the request that failed: requests
// to a host that only one end uses are that end's; on a host both ends share, the repository
// in the request's path (/v2/<repository>/...) or in a token request's scope tells them apart.
// Only when the request does not say does the step decide (fetching manifests is the source's,
// pushing the destination's).
func SideOf(err error) Side {
	var e *explainedError
	if errors.As(err, &e) {
		return e.side
	}
	var s1 *Schema1Error
	var dm *DigestMismatchError
	if errors.As(err, &s1) || errors.As(err, &dm) {
		return SideDestination
	}
	return SideUnknown
}

// explain wraps err with what a person can do about it and which end it came from (SideOf).
// src and dst are the two ends of a copy; either is nil for a call that talks to one registry
// only (Resolve, Present). The typed errors above already say what to do; registry and network
// errors get advice by kind. Which end failed is read from the request that failed, or is the
// fallback when the request does not tell.
func explain(err error, src, dst name.Reference, fallback Side) error {
	if err == nil {
		return nil
	}
	s := fallback
	switch {
	case src == nil:
		s = SideDestination
	case dst == nil:
		s = SideSource
	default:
		if found := sideOfRequest(failedURL(err), src, dst); found != SideUnknown {
			s = found
		}
	}
	ref := src
	if s == SideDestination {
		ref = dst
	}
	registry, repo := ref.Context().RegistryStr(), ref.Context().String()
	var advice string
	var unknownCA x509.UnknownAuthorityError
	switch {
	case errors.As(err, &unknownCA):
		// A private CA: retrying will not help, trusting it will. Checked before the kind: for
		// a loopback registry go-containerregistry also tries plain HTTP, and that answer
		// (400) would hide the TLS failure.
		advice = fmt.Sprintf("%s serves a certificate signed by an authority this process does not trust: if it uses a private CA, add that CA to the TLS roots of the transport (WithTransport)", registry)
	case isMalformed(err):
		// Only what the Mirror reads is decoded: the source's manifests and configs, or the
		// destination's on a call that talks to it alone. The URL does not tell: it is gone by then.
		r := src
		if r == nil {
			r = dst
		}
		advice = fmt.Sprintf("%s sent a manifest or image config for %s that cannot be parsed: "+
			"the image is malformed there, check it (e.g. crane manifest %s) or ask its publisher", r.Context().RegistryStr(), r, r)
	default:
		advice = adviceByKind(err, s, ref, registry, repo)
	}
	return &explainedError{err: err, advice: advice, side: s}
}

// sideOfRequest finds the end of the copy the request u was made for: by host when only one
// end uses it, else by the repository the request names. SideUnknown when u says neither.
func sideOfRequest(u *url.URL, src, dst name.Reference) Side {
	if u == nil {
		return SideUnknown
	}
	srcHost, dstHost := src.Context().RegistryStr(), dst.Context().RegistryStr()
	if srcHost != dstHost {
		switch {
		case hostMatches(u.Host, dstHost):
			return SideDestination
		case hostMatches(u.Host, srcHost):
			return SideSource
		}
		// A token service on a host of its own (auth.docker.io): its scope names the
		// repository, as on a shared host.
	}
	repo := requestRepository(u)
	if repo == "" || src.Context().RepositoryStr() == dst.Context().RepositoryStr() {
		return SideUnknown // a name both ends have (on two hosts) tells nothing
	}
	switch repo {
	case dst.Context().RepositoryStr():
		return SideDestination
	case src.Context().RepositoryStr():
		return SideSource
	}
	return SideUnknown
}

// requestRepository is the repository a registry request is about: the name in
// /v2/<name>/{manifests,blobs,tags,referrers}/..., or the first repository in a token
// request's scope (repository:<name>:<actions>). "" when it names none.
func requestRepository(u *url.URL) string {
	if rest, ok := strings.CutPrefix(u.Path, "/v2/"); ok {
		// Names may contain the words below as components, so take the last one.
		best := -1
		for _, w := range []string{"/manifests/", "/blobs/", "/tags/", "/referrers/"} {
			if i := strings.LastIndex(rest, w); i > best {
				best = i
			}
		}
		if best > 0 {
			return rest[:best]
		}
	}
	for _, scope := range u.Query()["scope"] {
		for _, one := range strings.Fields(scope) {
			if name, ok := strings.CutPrefix(one, "repository:"); ok {
				if i := strings.LastIndex(name, ":"); i > 0 {
					return name[:i]
				}
			}
		}
	}
	return ""
}

// adviceByKind says what to do about a registry or network error of each Kind, or nothing.
func adviceByKind(err error, s Side, ref name.Reference, registry, repo string) string {
	var advice string
	switch Classify(err) {
	case KindNotFound:
		if s == SideSource {
			advice = fmt.Sprintf("%s does not exist upstream: check the image name and tag (it may have been deleted or retagged)", ref)
		} else {
			advice = fmt.Sprintf("destination registry %s answered not found: check that repository %s may be created there with the push credentials", registry, repo)
		}
	case KindUnauthorized:
		if s == SideSource {
			// Docker Hub answers 401 rather than 404 for repositories that do not exist.
			advice = fmt.Sprintf("%s refused access to %s: check the pull credentials for %s, and that the image exists (some registries answer 401 for missing repositories)", registry, repo, registry)
		} else {
			advice = fmt.Sprintf("destination registry %s refused the push credentials or needs some: check them and that they may push to %s", registry, repo)
		}
	case KindUnreachable:
		advice = fmt.Sprintf("%s did not answer or failed after retries: check network access (DNS, proxy, firewall, TLS trust) to it and retry later", registry)
	case KindInvalid:
		if s == SideDestination {
			advice = fmt.Sprintf("destination registry %s refused the request as invalid: check that it accepts this kind of image", registry)
		}
	}
	return advice
}

// explainedError adds advice and the side to an error without hiding it from errors.Is/As.
type explainedError struct {
	err    error
	advice string // "" when there is nothing to add
	side   Side
}

func (e *explainedError) Error() string {
	if e.advice == "" {
		return e.err.Error()
	}
	return e.err.Error() + "; " + e.advice
}
func (e *explainedError) Unwrap() error { return e.err }

// failedURL finds the URL of the request that failed, if the error carries one.
func failedURL(err error) *url.URL {
	var te *transport.Error
	if errors.As(err, &te) && te.Request != nil && te.Request.URL != nil {
		return te.Request.URL
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			return u
		}
	}
	return nil
}

// hostMatches compares a URL host with a registry name, treating Docker Hub's aliases as one.
func hostMatches(urlHost, registry string) bool {
	if urlHost == registry {
		return true
	}
	return registry == name.DefaultRegistry && (urlHost == "registry-1.docker.io" || urlHost == "docker.io")
}
