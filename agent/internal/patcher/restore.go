package patcher

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/internal/backups"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// RestoreAll puts back the original images of every workload the patcher changed, in every
// namespace, and removes the imagePullSecrets entry it added. It is the uninstall path: run
// `agent restore` before deleting the agent, or Pods keep pulling from the backup registry
// (which keeps working, but is no longer maintained). It returns the number of workloads
// restored; it goes on after an error and returns all errors joined.
func RestoreAll(ctx context.Context, c client.Client) (int, error) {
	n := 0
	var errs []error
	for _, kind := range workload.PatchableKinds() {
		list, err := workload.NewList(c.Scheme(), kind)
		if err != nil {
			return n, err
		}
		if err := c.List(ctx, list); err != nil {
			errs = append(errs, fmt.Errorf("listing %T: %w", kind, err))
			continue
		}
		_ = forEach(list, func(obj client.Object) error {
			if _, ok := obj.GetAnnotations()[workload.OriginalImagesAnnotation]; !ok {
				if _, ok := obj.GetAnnotations()[backups.AddedPullSecretAnnotation]; !ok {
					return nil
				}
			}
			if err := restoreOne(ctx, c, obj); err != nil {
				errs = append(errs, fmt.Errorf("restoring %T %s/%s: %w", obj, obj.GetNamespace(), obj.GetName(), err))
				return nil
			}
			n++
			return nil
		})
	}
	return n, errors.Join(errs...)
}

func restoreOne(ctx context.Context, c client.Client, obj client.Object) error {
	key := client.ObjectKeyFromObject(obj)
	first := true
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			if err := c.Get(ctx, key, obj); err != nil {
				return err
			}
		}
		first = false
		if _, err := Restore(obj); err != nil {
			return err
		}
		return c.Update(ctx, obj)
	})
}

// Restore undoes the patcher's changes to obj in memory: original images back, the added
// imagePullSecrets entry and both annotations removed. It returns the number of images restored.
func Restore(obj client.Object) (int, error) {
	n, err := workload.Restore(obj)
	if err != nil {
		return 0, err
	}
	return n, backups.RemovePullSecret(obj)
}

func forEach(list client.ObjectList, f func(client.Object) error) error {
	return meta.EachListItem(list, func(o runtime.Object) error { return f(o.(client.Object)) })
}
