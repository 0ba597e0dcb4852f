package dashboard

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/hub/internal/metrics"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// View is everything the dashboard shows, at one moment.
type View struct {
	Time       time.Time   `json:"time"`
	Overview   Overview    `json:"overview"`
	Clusters   []Cluster   `json:"clusters"`
	Images     []Image     `json:"images"`
	RateLimits []RateLimit `json:"rateLimits"`
	Series     []Point     `json:"series"`
}

// Overview sums up the fleet.
type Overview struct {
	Clusters    int `json:"clusters"`
	Connected   int `json:"connected"`
	Unreachable int `json:"unreachable"` // Unreachable or Invalid
	Connecting  int `json:"connecting"`

	Images  int `json:"images"`  // distinct sources
	Ready   int `json:"ready"`   // backed up in every member using them
	Pending int `json:"pending"` // Pending or Cloning somewhere, failed nowhere
	Failed  int `json:"failed"`  // Failed in at least one member

	// Copies counts Copy calls by result: copied, present, cached, shared, failed.
	Copies         map[string]float64 `json:"copies"`
	BytesUploaded  float64            `json:"bytesUploaded"`
	BytesMounted   float64            `json:"bytesMounted"`
	CopyQueue      float64            `json:"copyQueue"`
	CopiesInFlight float64            `json:"copiesInFlight"`
	// DedupeRatio is the share of successful Copy calls that moved no content (present, cached
	// or shared) among all successful ones; 0 before the first.
	DedupeRatio float64 `json:"dedupeRatio"`
}

// Cluster is one registration and what its member holds.
type Cluster struct {
	Name       string    `json:"name"`
	Secret     string    `json:"secret,omitempty"` // namespace/name of the registration Secret
	Convention string    `json:"convention,omitempty"`
	State      string    `json:"state"`
	Host       string    `json:"host,omitempty"`
	LastProbe  time.Time `json:"lastProbe,omitzero"`
	Since      time.Time `json:"since,omitzero"`
	LastError  string    `json:"lastError,omitempty"`
	// Workloads counts the member's workloads of the kinds the hub watches; -1 when not connected.
	Workloads int `json:"workloads"`
	// Phases counts the member's ClonedImages by phase.
	Phases map[string]int `json:"phases"`
}

// Image is one source image across the fleet.
type Image struct {
	Source string `json:"source"`
	Backup string `json:"backup,omitempty"`
	Digest string `json:"digest,omitempty"`
	Size   int64  `json:"size,omitempty"`
	// Phase is the least advanced phase among the members: Failed, then Pending, Cloning, Ready.
	Phase        string     `json:"phase"`
	LastVerified *time.Time `json:"lastVerified,omitempty"`
	// Reason and Message are the Ready condition's when the image is not Ready.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// In is the image's ClonedImage in each member that has one, sorted by cluster.
	In []ImageIn `json:"clusters"`
}

// ImageIn is an image's ClonedImage in one member, as `kubectl get clonedimages` shows it.
type ImageIn struct {
	Cluster      string     `json:"cluster"`
	Name         string     `json:"name"`
	Phase        string     `json:"phase"`
	Backup       string     `json:"backup,omitempty"`
	Digest       string     `json:"digest,omitempty"`
	Size         int64      `json:"size,omitempty"`
	LastVerified *time.Time `json:"lastVerified,omitempty"`
	Reason       string     `json:"reason,omitempty"`
	Message      string     `json:"message,omitempty"`
	// Stale is true when the member is not connected: this is what it held when last read.
	Stale bool `json:"stale,omitempty"`

	source string
}

// Fleet is what the Collector needs of a *clusters.Fleet.
type Fleet interface {
	Snapshot() []clusters.Status
	Members() []*clusters.Member
}

// Collector builds Views from the hub's state. Every field but Fleet is optional.
type Collector struct {
	Fleet      Fleet
	Metrics    *metrics.Metrics
	RateLimits *RateLimits
	Series     *Series
	Now        func() time.Time

	mu        sync.Mutex
	lastKnown map[string][]ImageIn // by cluster: its ClonedImages when last read
}

// Collect builds a View. A member whose cache cannot be read is shown without its images.
func (c *Collector) Collect(ctx context.Context) View {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	v := View{Time: now(), Clusters: []Cluster{}, Images: []Image{}, RateLimits: []RateLimit{}, Series: []Point{}}
	members := map[string]*clusters.Member{}
	for _, m := range c.Fleet.Members() {
		members[m.Name] = m
	}
	images := map[string]*Image{}
	for _, s := range c.Fleet.Snapshot() {
		cl := Cluster{
			Name: s.Cluster, Secret: s.Secret, Convention: string(s.Convention), State: string(s.State),
			Host: s.Host, LastProbe: s.LastProbe, Since: s.Since, LastError: s.LastError,
			Workloads: -1, Phases: map[string]int{},
		}
		var ins []ImageIn
		var err error
		if m := members[s.Cluster]; m != nil && s.State == clusters.Connected {
			if ins, err = collectMember(ctx, m, &cl); err != nil {
				cl.LastError = fmt.Sprintf("reading the member's cache: %v", err)
			}
		}
		ins = c.remember(s.Cluster, ins, err == nil && members[s.Cluster] != nil && s.State == clusters.Connected)
		for _, in := range ins {
			cl.Phases[in.Phase]++
			img := images[in.source]
			if img == nil {
				img = &Image{Source: in.source}
				images[in.source] = img
			}
			img.In = append(img.In, in)
		}
		v.Clusters = append(v.Clusters, cl)
	}
	c.forget(v.Clusters)
	for _, img := range images {
		summarize(img)
		v.Images = append(v.Images, *img)
	}
	slices.SortFunc(v.Images, func(a, b Image) int { return strings.Compare(a.Source, b.Source) })
	if c.RateLimits != nil {
		v.RateLimits = c.RateLimits.List()
	}
	if c.Series != nil {
		v.Series = c.Series.Points()
	}
	v.Overview = overview(v, c.Metrics)
	return v
}

// remember records ins as cluster's images when fresh, and otherwise returns the last ones
// read, marked Stale: a member that stops answering keeps its images on the dashboard.
func (c *Collector) remember(cluster string, ins []ImageIn, fresh bool) []ImageIn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastKnown == nil {
		c.lastKnown = map[string][]ImageIn{}
	}
	if fresh {
		c.lastKnown[cluster] = ins
		return ins
	}
	var out []ImageIn
	for _, in := range c.lastKnown[cluster] {
		in.Stale = true
		out = append(out, in)
	}
	return out
}

// forget drops what is remembered of clusters no longer registered.
func (c *Collector) forget(registered []Cluster) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.lastKnown {
		if !slices.ContainsFunc(registered, func(cl Cluster) bool { return cl.Name == name }) {
			delete(c.lastKnown, name)
		}
	}
}

func collectMember(ctx context.Context, m *clusters.Member, cl *Cluster) ([]ImageIn, error) {
	c := m.Cluster.GetClient()
	cl.Workloads = 0
	for _, kind := range workload.Kinds() {
		n, err := m.CachedCount(ctx, kind)
		if err != nil {
			return nil, err
		}
		cl.Workloads += n
	}
	var cis v1alpha1.ClonedImageList
	if err := c.List(ctx, &cis); err != nil {
		return nil, err
	}
	out := make([]ImageIn, 0, len(cis.Items))
	for _, ci := range cis.Items {
		out = append(out, imageIn(m.Name, &ci))
	}
	return out, nil
}

func imageIn(cluster string, ci *v1alpha1.ClonedImage) ImageIn {
	in := ImageIn{
		source:  ci.Spec.Source,
		Cluster: cluster, Name: ci.Name, Phase: string(ci.Status.Phase), Backup: ci.Status.Backup,
		Digest: ci.Status.Digest, Size: ci.Status.Size,
	}
	if in.Phase == "" {
		in.Phase = string(v1alpha1.PhasePending)
	}
	if t := ci.Status.LastVerified; t != nil {
		tt := t.Time
		in.LastVerified = &tt
	}
	if cond := meta.FindStatusCondition(ci.Status.Conditions, v1alpha1.ReadyCondition); cond != nil && cond.Status != "True" {
		in.Reason, in.Message = cond.Reason, cond.Message
	}
	return in
}

// phaseOrder ranks phases, least advanced first: an image is as far as its slowest member.
var phaseOrder = map[string]int{
	string(v1alpha1.PhaseFailed): 0, string(v1alpha1.PhasePending): 1, string(v1alpha1.PhaseCloning): 2, string(v1alpha1.PhaseReady): 3,
}

// summarize fills an Image's fleet-wide fields from its members' ClonedImages.
func summarize(img *Image) {
	slices.SortFunc(img.In, func(a, b ImageIn) int { return strings.Compare(a.Cluster, b.Cluster) })
	img.Phase = string(v1alpha1.PhaseReady)
	for _, in := range img.In {
		if phaseOrder[in.Phase] < phaseOrder[img.Phase] {
			img.Phase = in.Phase
			img.Reason, img.Message = in.Reason, in.Message
		}
		img.Backup = cmp.Or(img.Backup, in.Backup)
		img.Digest = cmp.Or(img.Digest, in.Digest)
		img.Size = max(img.Size, in.Size)
		if in.LastVerified != nil && (img.LastVerified == nil || in.LastVerified.Before(*img.LastVerified)) {
			img.LastVerified = in.LastVerified // the oldest verification is the one to trust
		}
	}
}

func overview(v View, m *metrics.Metrics) Overview {
	o := Overview{Clusters: len(v.Clusters), Images: len(v.Images), Copies: map[string]float64{}}
	for _, c := range v.Clusters {
		switch clusters.State(c.State) {
		case clusters.Connected:
			o.Connected++
		case clusters.Connecting:
			o.Connecting++
		default:
			o.Unreachable++
		}
	}
	for _, img := range v.Images {
		switch v1alpha1.Phase(img.Phase) {
		case v1alpha1.PhaseReady:
			o.Ready++
		case v1alpha1.PhaseFailed:
			o.Failed++
		default:
			o.Pending++
		}
	}
	if m == nil {
		return o
	}
	for _, r := range []string{"copied", "present", "cached", "shared", "failed"} {
		o.Copies[r] = value(m.Copies.WithLabelValues(r))
	}
	o.BytesUploaded = value(m.BytesUploaded)
	o.BytesMounted = value(m.BytesMounted)
	o.CopyQueue = value(m.CopyQueueDepth)
	o.CopiesInFlight = value(m.CopiesInFlight)
	if ok := o.Copies["copied"] + o.Copies["present"] + o.Copies["cached"] + o.Copies["shared"]; ok > 0 {
		o.DedupeRatio = (ok - o.Copies["copied"]) / ok
	}
	return o
}

// value reads a counter or a gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// Sample adds the current counters to s; the Dashboard calls it every interval.
func Sample(s *Series, m *metrics.Metrics, now time.Time) {
	if m == nil {
		return
	}
	s.Add(Point{Time: now, Copies: value(m.Copies.WithLabelValues("copied")), Bytes: value(m.BytesUploaded)})
}

func sortBy[T any](s []T, key func(T) string) {
	slices.SortFunc(s, func(a, b T) int { return strings.Compare(key(a), key(b)) })
}
