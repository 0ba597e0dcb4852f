package config_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
)

const dockerConfig = `{"auths":{"quay.io":{"auth":"dXNlcjpwYXNz"}}}`

func dockerSecret(name, data string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(data)},
	}
}

func load(objs ...client.Object) (*config.Credentials, error) {
	c := fake.NewClientBuilder().WithObjects(objs...).Build()
	return config.LoadCredentials(context.Background(), c, ns, config.DefaultPushSecretName)
}

func TestLoadCredentials_pushSecretAndPullSecret(t *testing.T) {
	g := NewWithT(t)
	creds, err := load(dockerSecret(config.DefaultPushSecretName, dockerConfig), dockerSecret(v1alpha1.PullSecretName, `{"auths":{}}`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(creds.Push)).To(Equal(dockerConfig))
	g.Expect(creds.PushSource).To(Equal("Secret image-cloner-system/image-cloner-push-credentials"))
	g.Expect(string(creds.Pull)).To(Equal(`{"auths":{}}`))
	g.Expect(creds.Warnings).To(BeEmpty())
}

func TestLoadCredentials_seedConfigMapAcceptedWithWarning(t *testing.T) {
	g := NewWithT(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "docker-configuration"}, Data: map[string]string{"config.json": dockerConfig}}
	creds, err := load(cm)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(creds.Push)).To(Equal(dockerConfig))
	g.Expect(creds.Pull).To(BeNil())
	g.Expect(creds.Warnings).To(ConsistOf(ContainSubstring("move them to Secret image-cloner-system/image-cloner-push-credentials")))
}

func TestLoadCredentials_noneMeansAnonymousWithWarning(t *testing.T) {
	g := NewWithT(t)
	creds, err := load()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(creds.Push).To(BeNil())
	g.Expect(creds.Warnings).To(ConsistOf(ContainSubstring("pushed anonymously")))
}

func TestLoadCredentials_brokenSecretsAreActionableAndDoNotLeak(t *testing.T) {
	opaque := dockerSecret(config.DefaultPushSecretName, dockerConfig)
	opaque.Type = corev1.SecretTypeOpaque
	for _, tc := range []struct {
		obj  client.Object
		want string
	}{
		{opaque, `is of type "Opaque": recreate it with type kubernetes.io/dockerconfigjson`},
		{dockerSecret(config.DefaultPushSecretName, ""), "has no key .dockerconfigjson"},
		{dockerSecret(config.DefaultPushSecretName, `{"auths":{"quay.io":{"auth":"s3cr3t-not-base64!"}}}`), "Secret image-cloner-system/image-cloner-push-credentials key .dockerconfigjson"},
		{dockerSecret(v1alpha1.PullSecretName, `not json s3cr3t`), "Secret image-cloner-system/image-cloner-pull-credentials key .dockerconfigjson"},
		{&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "docker-configuration"}}, `has no key "config.json"`},
	} {
		_, err := load(tc.obj)
		g := NewWithT(t)
		g.Expect(err).To(HaveOccurred())
		g.Expect(err.Error()).To(ContainSubstring(tc.want))
		g.Expect(err.Error()).NotTo(ContainSubstring("s3cr3t"))
	}
}
