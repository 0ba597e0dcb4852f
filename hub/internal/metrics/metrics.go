package metrics

import (
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/image-cloner/image-cloner/hub/internal/images"
	"github.com/image-cloner/image-cloner/pkg/mirror"
)

// Metrics are the hub's collectors.
type Metrics struct {
	Copies         *prometheus.CounterVec
	BytesUploaded  prometheus.Counter
	BytesMounted   prometheus.Counter
	DedupeHits     prometheus.Counter
	CopyQueueDepth prometheus.Gauge
	CopiesInFlight prometheus.Gauge
	Errors         *prometheus.CounterVec
	BackupUp       *prometheus.GaugeVec
	// PullLimits holds the pull quotas registries announced; Observer feeds it.
	PullLimits *PullLimits

	reg prometheus.Registerer
}

// New makes the collectors and registers them with reg (controller-runtime's metrics.Registry
// when nil).
func New(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		reg = ctrlmetrics.Registry
	}
	m := &Metrics{
		Copies:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "image_cloner_copies_total", Help: "Copy calls by result: copied, present (the backup registry had it), cached (the presence cache answered), shared (joined another call's copy), failed."}, []string{"result"}),
		BytesUploaded:  prometheus.NewCounter(prometheus.CounterOpts{Name: "image_cloner_bytes_uploaded_total", Help: "Bytes of blobs uploaded to the backup registry."}),
		BytesMounted:   prometheus.NewCounter(prometheus.CounterOpts{Name: "image_cloner_bytes_mounted_total", Help: "Bytes of blobs mounted across repositories of the backup registry instead of uploaded."}),
		DedupeHits:     prometheus.NewCounter(prometheus.CounterOpts{Name: "image_cloner_dedupe_hits_total", Help: "Copy calls answered without moving content: presence cache hits and shared copies."}),
		CopyQueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "image_cloner_copy_queue_depth", Help: "Images waiting for a copy slot or a lookup (MAX_CONCURRENT_RECONCILES bounds copies)."}),
		CopiesInFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "image_cloner_copies_in_flight", Help: "Copies moving content right now."}),
		Errors:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "image_cloner_errors_total", Help: "Failed image backups by condition reason."}, []string{"reason"}),
		BackupUp:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "image_cloner_backup_registry_up", Help: "1 when the backup registry answered the hub's last probe (GET /v2/, any answer below 500), 0 when it did not; by registry host. Only the leading hub probes."}, []string{"registry"}),
		PullLimits:     NewPullLimits(nil),
	}
	m.reg = reg
	for _, c := range []prometheus.Collector{m.Copies, m.BytesUploaded, m.BytesMounted, m.DedupeHits, m.CopyQueueDepth, m.CopiesInFlight, m.Errors, m.BackupUp, m.PullLimits, heapLive()} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Observer feeds the copy metrics from a Mirror.
func (m *Metrics) Observer() mirror.Observer {
	return mirror.Observer{
		CopyStarted: func(name.Reference, name.Reference) { m.CopiesInFlight.Inc() },
		CopyEnded:   func(name.Reference, name.Reference, error) { m.CopiesInFlight.Dec() },
		CopyFinished: func(src, dst name.Reference, res mirror.Result, err error, _ time.Duration) {
			switch {
			case err != nil:
				m.Copies.WithLabelValues("failed").Inc()
			case res.Shared:
				m.Copies.WithLabelValues("shared").Inc()
				m.DedupeHits.Inc()
			case res.CacheHit:
				m.Copies.WithLabelValues("cached").Inc()
				m.DedupeHits.Inc()
			case res.AlreadyPresent:
				m.Copies.WithLabelValues("present").Inc()
			default:
				m.Copies.WithLabelValues("copied").Inc()
			}
		},
		BytesUploaded: func(n int64) { m.BytesUploaded.Add(float64(n)) },
		BytesMounted:  func(n int64) { m.BytesMounted.Add(float64(n)) },
		RateLimit:     m.PullLimits.Observe,
	}
}

// BackupProbed records a probe of the backup registry host (a backupprobe.Prober's Report):
// the gauge has one series, the registry configured now.
func (m *Metrics) BackupProbed(host string, err error) {
	v := 1.0
	if err != nil {
		v = 0
	}
	m.BackupUp.Reset()
	m.BackupUp.WithLabelValues(host).Set(v)
}

// Images returns the image reconciler's hooks.
func (m *Metrics) Images() images.Metrics {
	return images.Metrics{
		CopyWaiting: func(d int) { m.CopyQueueDepth.Add(float64(d)) },
		Failed:      func(reason string) { m.Errors.WithLabelValues(reason).Inc() },
	}
}

// Chain returns an Observer that calls a's hooks, then b's, for the hooks the hub uses (copies,
// bytes and rate limits): a Mirror takes one Observer, and the metrics are one of possibly
// several.
func Chain(a, b mirror.Observer) mirror.Observer {
	out := a
	out.CopyStarted = func(src, dst name.Reference) {
		for _, f := range []func(name.Reference, name.Reference){a.CopyStarted, b.CopyStarted} {
			if f != nil {
				f(src, dst)
			}
		}
	}
	out.CopyEnded = func(src, dst name.Reference, err error) {
		for _, f := range []func(name.Reference, name.Reference, error){a.CopyEnded, b.CopyEnded} {
			if f != nil {
				f(src, dst, err)
			}
		}
	}
	out.CopyFinished = func(src, dst name.Reference, res mirror.Result, err error, d time.Duration) {
		for _, f := range []func(name.Reference, name.Reference, mirror.Result, error, time.Duration){a.CopyFinished, b.CopyFinished} {
			if f != nil {
				f(src, dst, res, err, d)
			}
		}
	}
	out.BytesUploaded = func(n int64) {
		for _, f := range []func(int64){a.BytesUploaded, b.BytesUploaded} {
			if f != nil {
				f(n)
			}
		}
	}
	out.BytesMounted = func(n int64) {
		for _, f := range []func(int64){a.BytesMounted, b.BytesMounted} {
			if f != nil {
				f(n)
			}
		}
	}
	out.RateLimit = func(registry string, l mirror.RateLimit) {
		for _, f := range []func(string, mirror.RateLimit){a.RateLimit, b.RateLimit} {
			if f != nil {
				f(registry, l)
			}
		}
	}
	return out
}
