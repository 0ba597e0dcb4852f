package images

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/mirror"
)

// Event reasons on workloads.
const (
	ReasonBackupFailed = "BackupFailed"
)

// maxMessage bounds condition messages; registry errors can be long.
const maxMessage = 2048

// maxPodEvents bounds the Pods a failed image records an Event on: a Deployment with a
// thousand replicas would otherwise get a thousand alike Events, and its own Event says it.
const maxPodEvents = 3

// eventTargets are the objects a failure is reported on: every workload, and the first
// maxPodEvents Pods.
func eventTargets(objs []client.Object) []client.Object {
	var out []client.Object
	pods := 0
	for _, o := range objs {
		if _, pod := o.(*clusters.Pod); pod {
			if pods == maxPodEvents {
				continue
			}
			pods++
		}
		out = append(out, o)
	}
	return out
}

// markCloning creates the ClonedImage of members that have none, and marks new ones
// (no phase, or Pending from the agent) Cloning.
func (r *Reconciler) markCloning(ctx context.Context, src, backup imageref.Reference, users []*user) error {
	return eachServer(users, func(u *user) error {
		if u.current != nil && !isNew(&u.current.Status) {
			return nil
		}
		return r.write(ctx, u, src, cloning(src, backup))
	})
}

// cloning is markCloning's change to a status. It asks again whether the status is new, of the
// status as the API server has it when the cache was behind (write re-reads it): a
// registration whose cache had not seen the ClonedImage Ready yet must not turn it back to
// Cloning.
func cloning(src, backup imageref.Reference) func(*v1alpha1.ClonedImageStatus, int64) {
	return func(st *v1alpha1.ClonedImageStatus, gen int64) {
		if !isNew(st) {
			return
		}
		st.Phase = v1alpha1.PhaseCloning
		st.Backup = backup.String()
		setCondition(st, gen, v1alpha1.ReadyCondition, metav1.ConditionFalse, v1alpha1.ReasonCloning, fmt.Sprintf("copying %s to %s", src, backup))
	}
}

// stamp is the time to record in a status now, to the second: the API server keeps times to the
// second (RFC 3339), so a status holding nanoseconds never equals the one read back, and the
// later registrations of an API server, which find the status already written, would each
// send it again.
func (r *Reconciler) stamp() metav1.Time {
	return metav1.NewTime(r.Now()).Rfc3339Copy()
}

// markReady records a successful Copy: the backup holds the source's digest.
func (r *Reconciler) markReady(ctx context.Context, src, backup imageref.Reference, res mirror.Result, interval time.Duration, users []*user) error {
	mutate := ready(src, backup, res, r.stamp(), interval)
	return eachServer(users, func(u *user) error {
		return r.write(ctx, u, src, mutate)
	})
}

// ready is markReady's change to a status, verified at now.
//
// A status already Ready for this backup and digest, verified within interval, is left as it
// is when the Copy was answered by the Mirror's presence cache, which verified nothing new.
// Bumping its LastVerified (and its reason, Copied to AlreadyPresent) was a write into every
// member for each reconcile, and each write an event that reconciled the image again: in the
// fleet benchmark, where some of 50 registrations' caches were always a little behind, every
// image went through that loop about six times.
func ready(src, backup imageref.Reference, res mirror.Result, now metav1.Time, interval time.Duration) func(*v1alpha1.ClonedImageStatus, int64) {
	reason := v1alpha1.ReasonCopied
	if res.AlreadyPresent || res.CacheHit {
		reason = v1alpha1.ReasonAlreadyPresent
	}
	return func(st *v1alpha1.ClonedImageStatus, gen int64) {
		if res.CacheHit && readyFor(st, gen, backup.String(), res.Digest.String()) && now.Sub(st.LastVerified.Time) < interval {
			meta.RemoveStatusCondition(&st.Conditions, v1alpha1.SourceCondition)
			return
		}
		size := res.Size
		if st.Digest == res.Digest.String() && st.Size > size {
			// A cache hit or a HEAD only sees the top manifest; keep what the copy counted.
			size = st.Size
		}
		st.Phase = v1alpha1.PhaseReady
		st.Backup = backup.String()
		st.Digest = res.Digest.String()
		st.Size = size
		st.LastVerified = &now
		setCondition(st, gen, v1alpha1.ReadyCondition, metav1.ConditionTrue, reason, fmt.Sprintf("%s is backed up as %s@%s", src, backup, res.Digest))
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.SourceCondition)
	}
}

// backupStillGood reports whether every user had a Ready backup that the backup registry still
// holds, with its digest.
func (r *Reconciler) backupStillGood(ctx context.Context, copier Copier, dst name.Reference, users []*user) bool {
	digest := ""
	for _, u := range users {
		if u.current == nil || !u.current.IsReady() || (digest != "" && u.current.Status.Digest != digest) {
			return false
		}
		digest = u.current.Status.Digest
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		return false
	}
	copier.Forget(dst)
	ok, err := copier.Present(ctx, dst, h)
	return err == nil && ok
}

// markSourceProblem keeps Ready backups Ready, verified now, with a condition saying the source
// could not be checked.
func (r *Reconciler) markSourceProblem(ctx context.Context, src imageref.Reference, reason string, cause error, users []*user) error {
	now := r.stamp()
	return eachServer(users, func(u *user) error {
		return r.write(ctx, u, src, func(st *v1alpha1.ClonedImageStatus, gen int64) {
			st.LastVerified = &now
			setCondition(st, gen, v1alpha1.SourceCondition, metav1.ConditionFalse, reason, "the backup is intact, but the source could not be checked for a new digest: "+cut(cause.Error()))
		})
	})
}

// fail records a failed backup in every user and, when the failure is new, a Warning Event on
// the workloads using the image.
// backup is the zero Reference when no backup name could be given.
func (r *Reconciler) fail(ctx context.Context, users []*user, src, backup imageref.Reference, reason string, cause error) error {
	log := logr.FromContextOrDiscard(ctx)
	msg := cut(cause.Error() + hubAdvice(cause))
	log.Error(cause, "Backing up image failed", "reason", reason)
	if r.Metrics.Failed != nil {
		r.Metrics.Failed(reason)
	}
	// Whether the failure is new for a member is decided from what each registration had
	// cached, before any write: registrations of one API server then report it alike.
	newFailure := make(map[*user]bool, len(users))
	for _, u := range users {
		newFailure[u] = u.current == nil || u.current.Status.Phase != v1alpha1.PhaseFailed || readyReason(u.current) != reason
	}
	err := eachServer(users, func(u *user) error {
		return r.write(ctx, u, src, func(st *v1alpha1.ClonedImageStatus, gen int64) {
			st.Phase = v1alpha1.PhaseFailed
			if backup != (imageref.Reference{}) {
				st.Backup = backup.String()
			}
			setCondition(st, gen, v1alpha1.ReadyCondition, metav1.ConditionFalse, reason, msg)
		})
	})
	for _, u := range users {
		if newFailure[u] && u.member.Recorder != nil {
			for _, w := range eventTargets(u.workloads) {
				u.member.Recorder.Eventf(w, nil, corev1.EventTypeWarning, ReasonBackupFailed, "BackUp", "image %s cannot be backed up (%s): %s", src, reason, msg)
			}
		}
	}
	return err
}

// write creates the member's ClonedImage if it has none, then patches its status with mutate.
func (r *Reconciler) write(ctx context.Context, u *user, src imageref.Reference, mutate func(*v1alpha1.ClonedImageStatus, int64)) error {
	c := u.member.Cluster.GetClient()
	if u.current == nil {
		ci := &v1alpha1.ClonedImage{
			ObjectMeta: metav1.ObjectMeta{
				Name:   imageref.ObjectName(src),
				Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue},
			},
			Spec: v1alpha1.ClonedImageSpec{Source: src.String()},
		}
		err := c.Create(ctx, ci)
		if apierrors.IsAlreadyExists(err) {
			err = u.member.Cluster.GetAPIReader().Get(ctx, client.ObjectKeyFromObject(ci), ci)
		}
		if err != nil {
			return fmt.Errorf("cluster %s: creating ClonedImage %s: %w", u.member.Name, ci.Name, err)
		}
		u.current = ci
	}
	// Several registrations may name one API server (a cluster registered twice, or under two
	// names): they write the same status. On a conflict, re-read and apply the change again, so
	// the second writer finds the status already there instead of failing the reconcile.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		updated := u.current.DeepCopy()
		mutate(&updated.Status, updated.Generation)
		updated.Status.ObservedGeneration = updated.Generation
		if equalStatus(&u.current.Status, &updated.Status) {
			return nil
		}
		err := c.Status().Patch(ctx, updated, client.MergeFromWithOptions(u.current, client.MergeFromWithOptimisticLock{}))
		if apierrors.IsConflict(err) {
			fresh := &v1alpha1.ClonedImage{}
			if gerr := u.member.Cluster.GetAPIReader().Get(ctx, client.ObjectKeyFromObject(updated), fresh); gerr != nil {
				return gerr
			}
			u.current = fresh
			return err
		}
		if err == nil {
			u.current = updated
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster %s: updating ClonedImage %s: %w", u.member.Name, u.current.Name, err)
	}
	return nil
}

func equalStatus(a, b *v1alpha1.ClonedImageStatus) bool {
	return apiequality(a, b)
}

// hubAdvice is what the hub adds to a copy engine error it can say more about: the engine
// says what to fix, the hub how to fix it with its own flags.
func hubAdvice(err error) string {
	var unknownCA x509.UnknownAuthorityError
	if errors.As(err, &unknownCA) {
		return " (give the hub that CA with --registry-ca-file)"
	}
	if errors.Is(err, mirror.ErrReferrersNotListed) {
		return fmt.Sprintf(" (in the hub: %s=false copies images without their signatures, which a policy that verifies them then rejects)", config.KeyCopyReferrers)
	}
	return ""
}

func setCondition(st *v1alpha1.ClonedImageStatus, gen int64, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen})
}

// isNew says st is of a ClonedImage the hub has not worked on yet: no phase, or Pending (the
// agent's webhook asked for the copy).
func isNew(st *v1alpha1.ClonedImageStatus) bool {
	return st.Phase == "" || st.Phase == v1alpha1.PhasePending
}

// readyFor says st is Ready with backup at digest, verified, its Ready condition observed at
// generation gen.
func readyFor(st *v1alpha1.ClonedImageStatus, gen int64, backup, digest string) bool {
	c := meta.FindStatusCondition(st.Conditions, v1alpha1.ReadyCondition)
	return st.Phase == v1alpha1.PhaseReady && st.Backup == backup && st.Digest == digest && st.LastVerified != nil &&
		c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == gen
}

func readyReason(ci *v1alpha1.ClonedImage) string {
	if c := meta.FindStatusCondition(ci.Status.Conditions, v1alpha1.ReadyCondition); c != nil {
		return c.Reason
	}
	return ""
}

func cut(s string) string {
	if len(s) > maxMessage {
		return s[:maxMessage] + "..."
	}
	return s
}

func apiequality(a, b *v1alpha1.ClonedImageStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}
