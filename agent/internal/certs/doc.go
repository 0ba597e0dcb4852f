// Package certs gives the agent's webhook server its TLS certificates without cert-manager: a
// self-signed CA and a serving certificate it signs, kept in one Secret so every replica serves
// the same, renewed before they expire, and the CA bundle injected into the webhook
// configurations by name.
//
// Rotation needs no restart and fails no admission request: the server takes its certificate
// from Rotator.GetCertificate at every TLS handshake, and
//
//   - the serving certificate is renewed under the same CA, which the API server already trusts;
//   - a new CA is first added to the bundle beside the old one (injected into the webhook
//     configurations), and only after Options.CAOverlap does the serving certificate switch to
//     one the new CA signed; the old CA leaves the bundle when it expires.
//
// Replicas may all run a Rotator: writes to the Secret carry its resourceVersion, so when two
// rotate at once one wins and the other adopts its result on the next pass.
package certs
