package invariants

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// kind is one type the watcher lists and watches in every member.
type kind struct {
	name    string
	newList func() client.ObjectList
}

const clonedImageKind = "ClonedImage"

// watchedKinds: every workload kind the hub watches, and ClonedImages.
func watchedKinds() []kind {
	return []kind{
		{"Deployment", func() client.ObjectList { return &appsv1.DeploymentList{} }},
		{"DaemonSet", func() client.ObjectList { return &appsv1.DaemonSetList{} }},
		{"StatefulSet", func() client.ObjectList { return &appsv1.StatefulSetList{} }},
		{"Job", func() client.ObjectList { return &batchv1.JobList{} }},
		{"CronJob", func() client.ObjectList { return &batchv1.CronJobList{} }},
		{clonedImageKind, func() client.ObjectList { return &apiv1.ClonedImageList{} }},
	}
}

// workloadState is the last version of a workload the watcher saw.
type workloadState struct {
	cluster, kind string
	obj           client.Object
}

func (s *workloadState) object() string {
	return s.kind + " " + s.obj.GetNamespace() + "/" + s.obj.GetName()
}

// watchLoop lists then watches one kind in one member, and lists again whenever the watch
// ends (the API server went away, the resource version expired), until ctx is done.
func (w *Watcher) watchLoop(ctx context.Context, cluster string, c client.WithWatch, k kind) {
	pause := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
			return true
		}
	}
	for ctx.Err() == nil {
		list := k.newList()
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.List(lctx, list)
		cancel()
		if err != nil {
			if !pause() {
				return
			}
			continue
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			w.violate("extract/"+k.name, Violation{Kind: "WatcherError", Cluster: cluster, Detail: err.Error()})
			return
		}
		objs := make([]client.Object, 0, len(items))
		for _, it := range items {
			if o, ok := it.(client.Object); ok {
				objs = append(objs, o)
			}
		}
		w.relisted(cluster, k.name, objs)
		wi, err := c.Watch(ctx, k.newList(), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.GetResourceVersion()}})
		if err != nil {
			if !pause() {
				return
			}
			continue
		}
	events:
		for ev := range wi.ResultChan() {
			o, ok := ev.Object.(client.Object)
			switch {
			case ev.Type == watch.Error || !ok:
				break events
			case ev.Type == watch.Deleted:
				w.deleted(cluster, k.name, o)
			case ev.Type == watch.Added || ev.Type == watch.Modified:
				w.observe(cluster, k.name, o)
			}
		}
		wi.Stop()
	}
}

func objectKey(cluster, kind string, o client.Object) string {
	return cluster + "/" + kind + "/" + o.GetNamespace() + "/" + o.GetName()
}

// relisted replaces what the watcher knows of one kind in one member with a fresh list; a
// ClonedImage known before and missing from the list is lost.
func (w *Watcher) relisted(cluster, kindName string, objs []client.Object) {
	if kindName == clonedImageKind {
		present := map[string]bool{}
		for _, o := range objs {
			present[o.GetName()] = true
		}
		w.mu.Lock()
		var lost []string
		for name := range w.cloned[cluster] {
			if !present[name] {
				lost = append(lost, name)
				delete(w.cloned[cluster], name)
			}
		}
		w.mu.Unlock()
		for _, name := range lost {
			w.violate("lost/"+cluster+"/"+name, Violation{Kind: LostClonedImage, Cluster: cluster,
				Object: "ClonedImage " + name, Detail: "seen before, missing from a later list"})
		}
	} else {
		prefix := cluster + "/" + kindName + "/"
		w.mu.Lock()
		for key := range w.workloads {
			if strings.HasPrefix(key, prefix) {
				delete(w.workloads, key)
			}
		}
		w.mu.Unlock()
	}
	for _, o := range objs {
		w.observe(cluster, kindName, o)
	}
}

func (w *Watcher) deleted(cluster, kindName string, o client.Object) {
	if kindName == clonedImageKind {
		w.mu.Lock()
		delete(w.cloned[cluster], o.GetName())
		w.mu.Unlock()
		w.violate("lost/"+cluster+"/"+o.GetName(), Violation{Kind: LostClonedImage, Cluster: cluster,
			Object: "ClonedImage " + o.GetName(), Detail: "deleted"})
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	key := objectKey(cluster, kindName, o)
	delete(w.workloads, key)
	delete(w.halfSince, key)
}

// observe records the latest version of an object and checks, the moment it is seen, every
// backup it references and its original-images annotation.
func (w *Watcher) observe(cluster, kindName string, o client.Object) {
	if ci, ok := o.(*apiv1.ClonedImage); ok {
		w.mu.Lock()
		w.cloned[cluster][ci.Name] = ci.DeepCopy()
		w.seenCI[cluster+"/"+ci.Name] = true
		w.mu.Unlock()
		if ci.IsReady() {
			w.startCheck(ci.Status.Backup, ci.Status.Digest, cluster, "ClonedImage "+ci.Name)
		}
		return
	}
	spec, err := workload.PodSpec(o)
	if err != nil {
		return
	}
	s := &workloadState{cluster: cluster, kind: kindName, obj: o}
	w.mu.Lock()
	w.workloads[objectKey(cluster, kindName, o)] = s
	w.mu.Unlock()
	refs := workload.Refs(spec)
	for _, r := range refs {
		if w.isBackup(r.Image) {
			w.startCheck(r.Image, "", cluster, s.object())
		}
	}
	w.checkAnnotation(s, refs)
}

func (w *Watcher) isBackup(image string) bool {
	return strings.HasPrefix(image, w.in.BackupRegistry+"/")
}

// checkAnnotation: every container at a backup has its original recorded, and no recorded
// original belongs to a container that still runs it. The agent and the mutating webhook
// write both in one update, so any disagreement seen is a real one.
func (w *Watcher) checkAnnotation(s *workloadState, refs []workload.Ref) {
	key := objectKey(s.cluster, s.kind, s.obj) + "/" + s.obj.GetResourceVersion()
	originals, err := workload.Originals(s.obj)
	if err != nil {
		w.violate("annotation/"+key, Violation{Kind: AnnotationMismatch, Cluster: s.cluster, Object: s.object(), Detail: err.Error()})
		return
	}
	for _, r := range refs {
		orig, recorded := originals[r.Key()]
		switch {
		case w.isBackup(r.Image) && !recorded:
			w.violate("annotation/"+key+"/"+r.Key(), Violation{Kind: AnnotationMismatch, Cluster: s.cluster, Object: s.object(),
				Detail: fmt.Sprintf("container %s runs backup %s but %s records no original", r.Key(), r.Image, workload.OriginalImagesAnnotation)})
		case !w.isBackup(r.Image) && recorded && orig == r.Image:
			w.violate("annotation/"+key+"/"+r.Key(), Violation{Kind: AnnotationMismatch, Cluster: s.cluster, Object: s.object(),
				Detail: fmt.Sprintf("%s records a rewrite of container %s, which still runs %s", workload.OriginalImagesAnnotation, r.Key(), r.Image)})
		}
	}
}

// evaluate finds half-patched workloads: some containers at a backup while others, whose
// image has a Ready ClonedImage in the same member, still run the source. One that stays so
// for longer than Grace (or still is at the end, when final) is a violation.
func (w *Watcher) evaluate(now time.Time, final bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ready := map[string]map[string]bool{}
	for cluster, cis := range w.cloned {
		ready[cluster] = map[string]bool{}
		for _, ci := range cis {
			if ci.IsReady() {
				ready[cluster][ci.Spec.Source] = true
			}
		}
	}
	for key := range w.halfSince {
		if _, ok := w.workloads[key]; !ok {
			delete(w.halfSince, key) // deleted, or gone from a relist
		}
	}
	for key, s := range w.workloads {
		spec, err := workload.PodSpec(s.obj)
		if err != nil {
			continue
		}
		var atBackup, waiting []string
		for _, r := range workload.Refs(spec) {
			if w.isBackup(r.Image) {
				atBackup = append(atBackup, r.Key())
				continue
			}
			if ref, err := imageref.Parse(r.Image); err == nil && ready[s.cluster][ref.String()] {
				waiting = append(waiting, r.Key()+"="+r.Image)
			}
		}
		if len(atBackup) == 0 || len(waiting) == 0 {
			delete(w.halfSince, key)
			continue
		}
		since, ok := w.halfSince[key]
		if !ok {
			w.halfSince[key] = now
			since = now
		}
		if final || now.Sub(since) > w.in.Grace {
			w.violateLocked("half/"+key, Violation{Kind: HalfPatched, Cluster: s.cluster, Object: s.object(), At: now,
				Detail: fmt.Sprintf("containers %v at their backups while %v have a Ready ClonedImage, for %s",
					atBackup, waiting, now.Sub(since).Round(time.Millisecond))})
		}
	}
}
