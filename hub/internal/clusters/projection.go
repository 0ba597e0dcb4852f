package clusters

import (
	"slices"
	"unique"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/workload"
)

// What the projections of workloads and Pods share. The strings a fleet repeats in every
// cached object (images, image IDs, container names) are interned: a cached object holds a
// unique.Handle, one pointer, and every object naming the same image shares one copy of it,
// which goes once no cached object names it any more.

// Container is a container of a cached workload's pod template or of a cached Pod: its name
// and image, interned.
type Container struct {
	name, image unique.Handle[string]
}

// NewContainer returns the container name running image.
func NewContainer(name, image string) Container {
	return Container{name: unique.Make(name), image: unique.Make(image)}
}

// Name is the container's name.
func (c Container) Name() string { return c.name.Value() }

// Image is the container's image, as the spec gives it.
func (c Container) Image() string { return c.image.Value() }

func containersOf(in []corev1.Container) []Container {
	if len(in) == 0 {
		return nil
	}
	out := make([]Container, len(in))
	for i, c := range in {
		out[i] = NewContainer(c.Name, c.Image)
	}
	return out
}

// imagesOf returns the distinct images of the lists, sorted; no empty one.
func imagesOf(lists ...[]Container) []string {
	var out []string
	for _, l := range lists {
		for _, c := range l {
			if image := c.Image(); image != "" {
				out = append(out, image)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// originalsOf returns the images obj's original-images annotation records, distinct, sorted
// and interned; none when it has none or the annotation is not what the agent writes (the hub
// then counts only the current images, as it did of a malformed annotation on the whole
// object).
func originalsOf(obj client.Object) []unique.Handle[string] {
	originals, err := workload.Originals(obj)
	if err != nil || len(originals) == 0 {
		return nil
	}
	images := make([]string, 0, len(originals))
	for _, image := range originals {
		images = append(images, image)
	}
	slices.Sort(images)
	images = slices.Compact(images)
	out := make([]unique.Handle[string], len(images))
	for i, image := range images {
		out[i] = unique.Make(image)
	}
	return out
}

func values(handles []unique.Handle[string]) []string {
	if len(handles) == 0 {
		return nil
	}
	out := make([]string, len(handles))
	for i, h := range handles {
		out[i] = h.Value()
	}
	return out
}
