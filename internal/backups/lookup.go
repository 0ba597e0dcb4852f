package backups

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// Field indexes registered by SetupIndexes.
const (
	// BackupIndex indexes ClonedImages by their Ready backup reference, canonical, both by tag
	// and pinned to the digest.
	BackupIndex = "image-cloner.io/backup"
	// SourceIndex indexes workloads by the canonical form of every image they use, so that a
	// ClonedImage becoming Ready maps to the workloads whose image is its spec.source.
	SourceIndex = "image-cloner.io/source"
)

// SetupIndexes registers BackupIndex on ClonedImages and SourceIndex on every kind given.
func SetupIndexes(ctx context.Context, indexer client.FieldIndexer, kinds ...client.Object) error {
	if err := indexer.IndexField(ctx, &apiv1.ClonedImage{}, BackupIndex, func(o client.Object) []string {
		return backupKeys(o.(*apiv1.ClonedImage))
	}); err != nil {
		return fmt.Errorf("indexing ClonedImages by backup: %w", err)
	}
	for _, k := range kinds {
		if err := indexer.IndexField(ctx, k, SourceIndex, func(o client.Object) []string {
			return SourceKeys(o)
		}); err != nil {
			return fmt.Errorf("indexing %T by image: %w", k, err)
		}
	}
	return nil
}

// SourceKeys returns the canonical references of obj's images (those that parse).
func SourceKeys(obj client.Object) []string {
	var out []string
	for _, img := range workload.Images(obj) {
		if ref, err := imageref.Parse(img); err == nil {
			out = append(out, ref.String())
		}
	}
	return out
}

func backupKeys(c *apiv1.ClonedImage) []string {
	if !c.IsReady() {
		return nil
	}
	ref, err := imageref.Parse(c.Status.Backup)
	if err != nil {
		return nil
	}
	return []string{ref.String(), ref.WithDigest(c.Status.Digest).String()}
}

// Decision is what Lookup found for one image.
type Decision struct {
	// Image is the image as the workload has it; Source its canonical form.
	Image  string
	Source string
	// ObjectName is the name of the ClonedImage for Source.
	ObjectName string
	// IsBackup is true when Image already is a backup: nothing to do.
	IsBackup bool
	// Ignored is true when Image matches IMAGES_TO_IGNORE: it is never copied, rewritten nor
	// denied.
	Ignored bool
	// Target is the backup reference to use instead of Image; empty unless its ClonedImage is
	// Ready.
	Target string
	// Cloned is the ClonedImage for Source, nil when there is none.
	Cloned *apiv1.ClonedImage
}

// BackedUp reports whether a workload may keep or get this image: it already is a backup, it
// has a Ready one, or it is ignored.
func (d Decision) BackedUp() bool { return d.IsBackup || d.Target != "" || d.Ignored }

// Lookup answers Decisions from a reader, normally the manager's cache with SetupIndexes.
type Lookup struct {
	Reader client.Reader
}

// Decide looks image up. An image that does not parse is an error (wrapping
// imageref.ErrInvalidReference): the caller decides whether to skip it.
func (l *Lookup) Decide(ctx context.Context, s *Policy, image string) (Decision, error) {
	ref, err := imageref.Parse(image)
	if err != nil {
		return Decision{Image: image}, err
	}
	d := Decision{Image: image, Source: ref.String(), ObjectName: imageref.ObjectName(ref)}
	if s.Namer != nil && s.Namer.IsBackup(ref) {
		d.IsBackup = true
		return d, nil
	}
	if s.ImageIgnored(d.Source) {
		d.Ignored = true
		return d, nil
	}
	var byBackup apiv1.ClonedImageList
	if err := l.Reader.List(ctx, &byBackup, client.MatchingFields{BackupIndex: d.Source}); err != nil {
		return d, fmt.Errorf("listing ClonedImages by backup %s: %w", d.Source, err)
	}
	if len(byBackup.Items) > 0 {
		d.IsBackup = true
		return d, nil
	}
	ci := &apiv1.ClonedImage{}
	if err := l.Reader.Get(ctx, client.ObjectKey{Name: d.ObjectName}, ci); err != nil {
		if apierrors.IsNotFound(err) {
			return d, nil
		}
		return d, fmt.Errorf("getting ClonedImage %s: %w", d.ObjectName, err)
	}
	// The object name carries a hash of the source, but a name is not proof: check.
	if ci.Spec.Source != d.Source {
		return d, nil
	}
	d.Cloned = ci
	if ci.IsReady() {
		d.Target, err = Target(ci, s.PinDigest)
		if err != nil {
			return d, err
		}
	}
	return d, nil
}

// Target returns the reference a container should use for the Ready ClonedImage c: its
// backup, pinned to the digest when pin is true.
func Target(c *apiv1.ClonedImage, pin bool) (string, error) {
	if !c.IsReady() {
		return "", fmt.Errorf("ClonedImage %s is not Ready", c.Name)
	}
	ref, err := imageref.Parse(c.Status.Backup)
	if err != nil {
		return "", fmt.Errorf("ClonedImage %s has an invalid backup: %w", c.Name, err)
	}
	if pin {
		return ref.WithDigest(c.Status.Digest).String(), nil
	}
	return ref.String(), nil
}
