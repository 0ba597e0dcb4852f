package mirror_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/pkg/mirror"
)

func TestClassify_sortsErrorsIntoKinds(t *testing.T) {
	registryError := func(status int, code transport.ErrorCode) error {
		e := &transport.Error{StatusCode: status}
		if code != "" {
			e.Errors = []transport.Diagnostic{{Code: code, Message: "x"}}
		}
		return e
	}
	_, badName := name.NewTag("UPPER/Case::x")
	for _, tc := range []struct {
		name string
		err  error
		want mirror.Kind
	}{
		{"nil", nil, mirror.KindOther},
		{"manifest unknown", registryError(404, transport.ManifestUnknownErrorCode), mirror.KindNotFound},
		{"HEAD 404 without a body", registryError(404, ""), mirror.KindNotFound},
		{"401", registryError(401, ""), mirror.KindUnauthorized},
		{"403 denied", registryError(403, transport.DeniedErrorCode), mirror.KindUnauthorized},
		{"429", registryError(429, ""), mirror.KindRateLimited},
		{"TOOMANYREQUESTS code", registryError(403, transport.TooManyRequestsErrorCode), mirror.KindRateLimited},
		{"503", registryError(503, ""), mirror.KindUnreachable},
		{"manifest invalid", registryError(400, transport.ManifestInvalidErrorCode), mirror.KindInvalid},
		{"415", registryError(415, ""), mirror.KindInvalid},
		{"rate limited", &mirror.RateLimitedError{Registry: "index.docker.io"}, mirror.KindRateLimited},
		{"schema 1", &mirror.Schema1Error{Source: "a", Destination: "b", Reason: "c"}, mirror.KindSchema1},
		{"digest mismatch", &mirror.DigestMismatchError{}, mirror.KindDigestMismatch},
		{"connection refused", &url.Error{Op: "Get", URL: "https://r/v2/", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, mirror.KindUnreachable},
		{"DNS", &net.DNSError{Err: "no such host", Name: "r", IsNotFound: true}, mirror.KindUnreachable},
		{"deadline", context.DeadlineExceeded, mirror.KindUnreachable},
		{"cancelled", context.Canceled, mirror.KindOther},
		{"bad name", badName, mirror.KindInvalid},
		{"something else", errors.New("boom"), mirror.KindOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(mirror.Classify(tc.err)).To(Equal(tc.want))
			if tc.err != nil {
				g.Expect(mirror.Classify(fmt.Errorf("copying x: %w", tc.err))).To(Equal(tc.want), "wrapped")
			}
		})
	}
}

func TestKind_String(t *testing.T) {
	g := NewWithT(t)
	g.Expect(mirror.KindRateLimited.String()).To(Equal("RateLimited"))
	g.Expect(mirror.KindNotFound.String()).To(Equal("NotFound"))
	g.Expect(mirror.KindSchema1.String()).To(Equal("Schema1"))
	g.Expect(mirror.Kind(99).String()).To(Equal("Kind(99)"))
}

func TestErrors_supportErrorsIsAndAs(t *testing.T) {
	g := NewWithT(t)
	inner := &transport.Error{StatusCode: http.StatusBadRequest}
	var err error = &mirror.Schema1Error{Source: "docker.io/x/y:1", Destination: "quay.io", Reason: "MANIFEST_INVALID: manifest invalid"}
	err = fmt.Errorf("copying: %w", err)
	g.Expect(errors.Is(err, mirror.ErrSchema1)).To(BeTrue())
	g.Expect(err.Error()).To(ContainSubstring("schema 1 manifest of docker.io/x/y:1 refused by destination registry quay.io: MANIFEST_INVALID: manifest invalid"))
	g.Expect(err.Error()).To(ContainSubstring("ask the image's publisher for a schema 2/OCI image or pin a newer tag"))
	g.Expect(errors.Is(inner, mirror.ErrSchema1)).To(BeFalse())

	mismatch := &mirror.DigestMismatchError{Reference: "quay.io/acme/x:1", Want: v1.Hash{Algorithm: "sha256", Hex: "aa"}, Got: v1.Hash{Algorithm: "sha256", Hex: "bb"}}
	var dm *mirror.DigestMismatchError
	g.Expect(errors.As(fmt.Errorf("x: %w", mismatch), &dm)).To(BeTrue())
	g.Expect(dm.Error()).To(ContainSubstring("destination quay.io/acme/x:1 has digest sha256:bb but the source has sha256:aa"))
}
