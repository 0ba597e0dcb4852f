package mirror

import (
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestParseRateLimit_readsDockerHubHeaders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header http.Header
		want   *RateLimit
	}{
		{"Docker Hub", http.Header{"Ratelimit-Limit": {"100;w=21600"}, "Ratelimit-Remaining": {"76;w=21600"}, "Docker-Ratelimit-Source": {"192.0.2.1"}},
			&RateLimit{Limit: 100, Remaining: 76, Window: 6 * time.Hour, Source: "192.0.2.1"}},
		{"no window", http.Header{"Ratelimit-Limit": {"5000"}, "Ratelimit-Remaining": {"4999"}},
			&RateLimit{Limit: 5000, Remaining: 4999}},
		{"limit only", http.Header{"Ratelimit-Limit": {"200;w=21600"}},
			&RateLimit{Limit: 200, Remaining: 200, Window: 6 * time.Hour}},
		{"remaining only, spaces", http.Header{"Ratelimit-Remaining": {" 3 ; w=60"}},
			&RateLimit{Remaining: 3, Window: time.Minute}},
		{"none", http.Header{}, nil},
		{"garbage", http.Header{"Ratelimit-Limit": {"lots"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(parseRateLimit(tc.header)).To(Equal(tc.want))
		})
	}
}

func TestParseRetryAfter_readsSecondsAndDates(t *testing.T) {
	now := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		value  string
		want   time.Duration
		wantOK bool
	}{
		{"30", 30 * time.Second, true},
		{"0", 0, true},
		{"-5", 0, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"99999999999999999", 365 * 24 * time.Hour, true},
		{"", 0, false},
		{"tomorrow", 0, false},
	} {
		t.Run(tc.value, func(t *testing.T) {
			g := NewWithT(t)
			got, ok := parseRetryAfter(tc.value, now)
			g.Expect(ok).To(Equal(tc.wantOK))
			g.Expect(got).To(Equal(tc.want))
		})
	}
}
