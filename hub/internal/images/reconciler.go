package images

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/mirror"
)

// Copier is what the Reconciler needs of a *mirror.Mirror.
type Copier interface {
	Copy(ctx context.Context, src, dst name.Reference) (mirror.Result, error)
	Present(ctx context.Context, dst name.Reference, digest v1.Hash) (bool, error)
	Forget(dst name.Reference)
}

// InForce returns the configuration and the copy engine in force; nil, nil while the
// configuration is invalid, in which case nothing is reconciled until it is fixed.
type InForce func() (*config.Config, Copier)

// Metrics receives what the Reconciler does; every field is optional.
type Metrics struct {
	// CopyWaiting is called with +1 when a reconcile starts waiting on Copy and -1 when Copy
	// returns.
	CopyWaiting func(delta int)
	// Failed is called with the condition reason of every failed image.
	Failed func(reason string)
}

// DefaultWorkers is the default of Reconciler.Workers.
const DefaultWorkers = 20

// Reconciler reconciles one image across the fleet. Set the exported fields, then call
// SetupWithManager, and register it with the clusters.Fleet as a Listener.
type Reconciler struct {
	Fleet   *clusters.Fleet
	InForce InForce
	Log     logr.Logger
	Metrics Metrics
	// Workers is how many images are reconciled at once; default DefaultWorkers. Copies
	// themselves are bounded by the Mirror (MAX_CONCURRENT_RECONCILES); workers mostly wait on
	// HEADs, on a copy slot and on status writes.
	Workers int
	// CopyTimeout bounds one Copy; default 30m.
	CopyTimeout time.Duration
	// Now tells the time; default time.Now.
	Now func() time.Time

	source *fleetSource
}

// SetupWithManager checks the dependencies and registers the controller "images" with mgr.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Fleet == nil || r.InForce == nil {
		return errors.New("images.Reconciler needs Fleet and InForce")
	}
	if r.Workers <= 0 {
		r.Workers = DefaultWorkers
	}
	if r.CopyTimeout == 0 {
		r.CopyTimeout = 30 * time.Minute
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	r.source = newFleetSource()
	r.Fleet.AddListener(r)
	return ctrl.NewControllerManagedBy(mgr).
		Named("images").
		WatchesRawSource(r.source).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: r.Workers,
			// Failed copies are retried from 2s up to 10 minutes apart.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](2*time.Second, 10*time.Minute),
		}).
		Complete(r)
}

// Resync enqueues every image used in every connected member, e.g. after the configuration
// changed.
func (r *Reconciler) Resync(ctx context.Context) {
	if r.source == nil {
		return
	}
	q := r.source.wait(ctx)
	if q == nil {
		return
	}
	for _, m := range r.Fleet.Members() {
		for _, obj := range clusters.CachedKinds() {
			objs, err := m.CachedObjects(ctx, obj)
			if err != nil {
				r.Log.Error(err, "Listing for resync", "cluster", m.Name)
				continue
			}
			for _, o := range objs {
				for _, req := range mapToImages(ctx, o) {
					q.Add(req)
				}
			}
		}
	}
}

// user is a member that uses the image: its workloads and Pods (outside ignored namespaces, not
// opted out) and its ClonedImage, if any.
type user struct {
	member *clusters.Member
	// workloads are the workloads and the Pods, the cache's own objects (read only; Pods are
	// projections: clusters.ProjectPod).
	workloads []client.Object
	current   *v1alpha1.ClonedImage // nil when the member has none yet
}

// Reconcile makes sure the image req.Name is backed up and recorded in every member using it.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cfg, copier := r.InForce()
	if cfg == nil {
		// The settings reconciler reports the problem and resyncs once it is fixed.
		return ctrl.Result{}, nil
	}
	src, err := imageref.Parse(req.Name)
	if err != nil || src.String() != req.Name {
		return ctrl.Result{}, nil
	}
	// The request's logger carries the controller's name and the reconcileID.
	log := ctrl.LoggerFrom(ctx).WithValues("image", req.Name)
	ctx = logr.NewContext(ctx, log)
	if cfg.Namer.IsBackup(src) || cfg.RegistryIgnored(src.Registry) || cfg.ImageIgnored(src.String()) {
		return ctrl.Result{}, nil
	}
	// A member whose cache cannot be read right now (it is disconnecting) must not hold up the
	// others: serve those that answered, then retry for the rest.
	users, usersErr := r.users(ctx, cfg, src)
	if len(users) == 0 {
		return ctrl.Result{}, usersErr
	}
	res, err := r.reconcile(ctx, cfg, copier, src, users)
	if err == nil && usersErr != nil {
		err = usersErr
	}
	return res, err
}

func (r *Reconciler) reconcile(ctx context.Context, cfg *config.Config, copier Copier, src imageref.Reference, users []*user) (ctrl.Result, error) {
	backup, err := cfg.Namer.Backup(src)
	if err != nil {
		return ctrl.Result{}, r.fail(ctx, users, src, imageref.Reference{}, v1alpha1.ReasonInvalidReference, err)
	}
	backup = backup.WithDigest("") // copies are tagged: registries such as quay.io collect untagged manifests
	if wait, ok := r.upToDate(cfg, src, backup, users); ok {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	return r.backUp(ctx, cfg, copier, src, backup, users)
}

// users finds the connected members whose workloads use src, or which have a ClonedImage for
// it. A member that cannot be read is left out, and named in the error.
func (r *Reconciler) users(ctx context.Context, cfg *config.Config, src imageref.Reference) ([]*user, error) {
	var out []*user
	var errs []error
	for _, m := range r.Fleet.Members() {
		u, err := r.userIn(ctx, cfg, m, src)
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", m.Name, err))
			continue
		}
		if len(u.workloads) > 0 || u.current != nil {
			out = append(out, u)
		}
	}
	return out, errors.Join(errs...)
}

func (r *Reconciler) userIn(ctx context.Context, cfg *config.Config, m *clusters.Member, src imageref.Reference) (*user, error) {
	u := &user{member: m}
	c := m.Cluster.GetClient()
	skip := newLeftAlone(cfg, m)
	for _, kind := range clusters.WatchedKinds() {
		// The cache's own objects, not copies: a popular image is used by thousands of cached
		// workloads over the fleet's registrations, and copying them all for every reconcile
		// was a third of the hub's CPU in the fleet benchmark. They are only read here (names
		// and labels, and Events refer to them); nothing may modify them.
		objs, err := m.CachedByIndex(ctx, kind, IndexImages, src.String())
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			left, err := skip.is(ctx, o)
			if err != nil {
				return nil, err
			}
			if !left {
				u.workloads = append(u.workloads, o)
			}
		}
	}
	ci := &v1alpha1.ClonedImage{}
	switch err := c.Get(ctx, client.ObjectKey{Name: imageref.ObjectName(src)}, ci); {
	case err == nil:
		u.current = ci
	case client.IgnoreNotFound(err) != nil:
		return nil, err
	}
	return u, nil
}

// upToDate reports whether every user has a Ready ClonedImage for backup verified recently
// enough, and when to look again.
func (r *Reconciler) upToDate(cfg *config.Config, src, backup imageref.Reference, users []*user) (time.Duration, bool) {
	interval := r.interval(cfg, src)
	var oldest time.Time
	for _, u := range users {
		ci := u.current
		if ci == nil || !ci.IsReady() || ci.Status.Backup != backup.String() || ci.Status.LastVerified == nil {
			return 0, false
		}
		if t := ci.Status.LastVerified.Time; oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	age := r.Now().Sub(oldest)
	if age >= interval {
		return 0, false
	}
	return interval - age, true
}

// interval is how long a verified backup of src is trusted: VERIFY_INTERVAL, or
// TAG_REFRESH_INTERVAL if shorter and src is a tag that can move.
func (r *Reconciler) interval(cfg *config.Config, src imageref.Reference) time.Duration {
	if src.Digest == "" {
		return min(cfg.VerifyInterval, cfg.TagRefreshInterval)
	}
	return cfg.VerifyInterval
}

// backUp copies src to backup and records the outcome in every user.
func (r *Reconciler) backUp(ctx context.Context, cfg *config.Config, copier Copier, src, backup imageref.Reference, users []*user) (ctrl.Result, error) {
	srcName, dstName, err := names(src, backup)
	if err != nil {
		return ctrl.Result{}, r.fail(ctx, users, src, backup, v1alpha1.ReasonInvalidReference, err)
	}
	if r.verifyDue(cfg, users) {
		// The backup may have been pruned: ask the registry, not the Mirror's memory.
		copier.Forget(dstName)
	}
	if err := r.markCloning(ctx, src, backup, users); err != nil {
		return ctrl.Result{}, err
	}
	o := r.copy(ctx, copier, srcName, dstName, users)
	return r.record(ctx, cfg, src, backup, users, o)
}

// names are src and backup as go-containerregistry references.
func names(src, backup imageref.Reference) (name.Reference, name.Reference, error) {
	srcName, err := name.ParseReference(src.String())
	if err != nil {
		return nil, nil, err
	}
	dstName, err := name.ParseReference(backup.String())
	if err != nil {
		return nil, nil, err
	}
	return srcName, dstName, nil
}

// verifyDue reports whether a user's Ready backup was last verified VERIFY_INTERVAL ago or
// more.
func (r *Reconciler) verifyDue(cfg *config.Config, users []*user) bool {
	for _, u := range users {
		if u.current != nil && u.current.IsReady() && (u.current.Status.LastVerified == nil || r.Now().Sub(u.current.Status.LastVerified.Time) >= cfg.VerifyInterval) {
			return true
		}
	}
	return false
}

// outcome is what one attempt at backing up an image came to; record writes it.
type outcome struct {
	// res is the Copy's result; err its error, nil when the backup is in place.
	res mirror.Result
	err error
	// reason is the Ready reason of err.
	reason string
	// backupIntact is true when err is the source's (or the network's) and every user's Ready
	// backup is still in the backup registry: what backups are for.
	backupIntact bool
}

// copy runs the Copy, bounded by CopyTimeout, and sorts out what its error means.
func (r *Reconciler) copy(ctx context.Context, copier Copier, srcName, dstName name.Reference, users []*user) outcome {
	logr.FromContextOrDiscard(ctx).V(1).Info("Backing up image", "backup", dstName.String())
	if r.Metrics.CopyWaiting != nil {
		r.Metrics.CopyWaiting(1)
		defer r.Metrics.CopyWaiting(-1)
	}
	cctx, cancel := context.WithTimeout(ctx, r.CopyTimeout)
	res, err := copier.Copy(cctx, srcName, dstName)
	cancel()
	if err == nil {
		return outcome{res: res}
	}
	o := outcome{res: res, err: err, reason: reasonFor(err)}
	o.backupIntact = o.reason != v1alpha1.ReasonBackupUnreachable && r.backupStillGood(ctx, copier, dstName, users)
	return o
}

// record writes o into every user, and says when to look again.
func (r *Reconciler) record(ctx context.Context, cfg *config.Config, src, backup imageref.Reference, users []*user, o outcome) (ctrl.Result, error) {
	again := func(err error) (ctrl.Result, error) {
		if err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{RequeueAfter: r.interval(cfg, src)}, nil
	}
	switch {
	case o.err == nil:
		if !o.res.Shared && !o.res.CacheHit && !o.res.AlreadyPresent {
			logr.FromContextOrDiscard(ctx).V(1).Info("Backed up image", "backup", backup.String(), "digest", o.res.Digest.String(),
				"bytesUploaded", o.res.BytesUploaded, "bytesMounted", o.res.BytesMounted)
		}
		return again(r.markReady(ctx, src, backup, o.res, r.interval(cfg, src), users))
	case o.backupIntact:
		// Stay Ready, say what happened, and look again after the interval.
		return again(r.markSourceProblem(ctx, src, o.reason, o.err, users))
	}
	if err := r.fail(ctx, users, src, backup, o.reason, o.err); err != nil {
		return ctrl.Result{}, err
	}
	var rl *mirror.RateLimitedError
	if errors.As(o.err, &rl) && rl.RetryAfter > 0 {
		return ctrl.Result{RequeueAfter: rl.RetryAfter}, nil
	}
	// The error goes back to the queue, which retries with backoff.
	return ctrl.Result{}, fmt.Errorf("backing up %s: %w", src, o.err)
}

// reasonFor maps a Mirror error onto a Ready condition reason. Which end failed comes from
// the request (mirror.SideOf), never from the host: source and backup often share one.
func reasonFor(err error) string {
	return reason(mirror.Classify(err), mirror.SideOf(err))
}

func reason(kind mirror.Kind, side mirror.Side) string {
	switch kind {
	case mirror.KindNotFound:
		if side == mirror.SideDestination {
			return v1alpha1.ReasonBackupUnreachable
		}
		return v1alpha1.ReasonSourceNotFound
	case mirror.KindUnauthorized:
		return v1alpha1.ReasonAuthenticationFailed
	case mirror.KindRateLimited:
		return v1alpha1.ReasonRateLimited
	case mirror.KindUnreachable:
		if side == mirror.SideDestination {
			return v1alpha1.ReasonBackupUnreachable
		}
		return v1alpha1.ReasonSourceUnreachable
	case mirror.KindSchema1:
		return v1alpha1.ReasonSchema1Refused
	case mirror.KindDigestMismatch:
		return v1alpha1.ReasonDigestMismatch
	default:
		return v1alpha1.ReasonCopyFailed
	}
}
