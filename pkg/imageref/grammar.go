package imageref

import (
	"strconv"
	"strings"
)

// The checks below are hand-written forms of the regular expressions in
// https://github.com/distribution/reference/blob/main/regexp.go. Writing them
// out lets Parse say which part of a reference is wrong, and lets the naming
// code check its own output against exactly the same rules.

const (
	// maxNameLength is distribution's RepositoryNameTotalLengthMax: the
	// longest repository path (the registry is not counted) a reference may
	// have. Backup names keep to it with the registry included (Namer), which
	// every registry accepts.
	maxNameLength = 255

	// maxTagLength is the longest tag: `[\w][\w.-]{0,127}`.
	maxTagLength = 128
)

func isLowerAlnum(c byte) bool {
	return ('a' <= c && c <= 'z') || ('0' <= c && c <= '9')
}

func isAlnum(c byte) bool {
	return isLowerAlnum(c) || ('A' <= c && c <= 'Z')
}

func isDigit(c byte) bool {
	return '0' <= c && c <= '9'
}

func isLowerHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f')
}

// isPathComponent reports whether s matches
// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`: lowercase alphanumeric runs
// joined by one '.', one '_', two '_' or any number of '-'.
func isPathComponent(s string) bool {
	if s == "" || !isLowerAlnum(s[0]) || !isLowerAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); {
		if isLowerAlnum(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && !isLowerAlnum(s[j]) {
			j++
		}
		if !isSeparator(s[i:j]) {
			return false
		}
		i = j
	}
	return true
}

// isSeparator reports whether s is one of the separators allowed inside a
// path component.
func isSeparator(s string) bool {
	switch s {
	case ".", "_", "__":
		return true
	}
	return s != "" && strings.Trim(s, "-") == ""
}

// isDomain reports whether s matches distribution's domainAndPort: a DNS
// name (which may be a dotted IPv4 address) or a bracketed IPv6 address,
// optionally followed by ":port". Case is not checked here: Parse lowercases
// the registry first.
func isDomain(s string) bool {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		host, port = s[:end+1], s[end+1:]
		if !isIPv6(host) {
			return false
		}
	} else {
		if i := strings.IndexByte(s, ':'); i >= 0 {
			host, port = s[:i], s[i:]
		}
		if !isDomainName(host) {
			return false
		}
	}
	if port == "" {
		return true
	}
	if len(port) < 2 || port[0] != ':' {
		return false
	}
	for i := 1; i < len(port); i++ {
		if !isDigit(port[i]) {
			return false
		}
	}
	return true
}

// isDomainName reports whether s is dot-separated labels of alphanumerics
// and inner dashes.
func isDomainName(s string) bool {
	if s == "" {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || !isAlnum(label[0]) || !isAlnum(label[len(label)-1]) {
			return false
		}
		for i := 0; i < len(label); i++ {
			if !isAlnum(label[i]) && label[i] != '-' {
				return false
			}
		}
	}
	return true
}

// isIPv6 reports whether s matches `\[(?:[a-fA-F0-9:]+)\]`. Like
// distribution, it does not check that the address is well formed: zones and
// IPv4-mapped forms are excluded by the character set alone.
func isIPv6(s string) bool {
	if len(s) < 3 || s[0] != '[' || s[len(s)-1] != ']' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		c := s[i]
		if !isDigit(c) && !('a' <= c && c <= 'f') && !('A' <= c && c <= 'F') && c != ':' {
			return false
		}
	}
	return true
}

// looksLikeDomain is distribution's rule for telling a registry host from the
// first path component of a Docker Hub name: it contains a '.' or a ':' (an
// IPv6 address always has a ':'), is "localhost", or has an upper-case
// letter (a path never has one, so "LOCALDOMAIN/app" names host LOCALDOMAIN).
func looksLikeDomain(s string) bool {
	return s == "localhost" || strings.ContainsAny(s, ".:") || strings.ToLower(s) != s
}

// isTag reports whether s matches `[\w][\w.-]{0,127}`.
func isTag(s string) bool {
	if s == "" || len(s) > maxTagLength || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// digestHexLength is the length of the hex encoding of each digest algorithm
// accepted. These are the algorithms registered by the OCI image spec
// (https://github.com/opencontainers/image-spec/blob/main/descriptor.md#registered-algorithms);
// a registry will not serve anything else.
var digestHexLength = map[string]int{
	"sha256": 64,
	"sha512": 128,
}

// checkDigest returns why d is not a digest, or "" if it is one.
func checkDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok {
		return "digest must be <algorithm>:<hex>, e.g. sha256:<64 hex characters>"
	}
	want, known := digestHexLength[alg]
	if !known {
		return "digest algorithm must be sha256 or sha512"
	}
	if len(hex) != want {
		return "digest " + alg + " must have " + strconv.Itoa(want) + " hex characters"
	}
	for i := 0; i < len(hex); i++ {
		if !isLowerHex(hex[i]) {
			return "digest must be lowercase hex"
		}
	}
	return ""
}
