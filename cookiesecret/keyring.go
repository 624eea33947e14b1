package cookiesecret

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
)

// maxKeyIDLen bounds key ids, which travel in every value.
const maxKeyIDLen = 32

// maxKeys bounds a keyring: rotation needs two or three keys, not more.
const maxKeys = 16

// Key is one entry of a [Keyring]: a key id and its secret.
type Key struct {
	// ID names the key in every value it signs: 1 to 32 characters from
	// A–Z, a–z, 0–9, '-' and '_'.
	ID string
	// Secret is the key material; it never prints.
	Secret Secret
}

// Keyring holds the keys of an application: the first (current) key signs
// and encrypts; every key verifies and decrypts. Each value carries the id
// of the key that made it, so verification picks that key directly rather
// than trying every key in turn, and a value whose key was removed is
// refused with [ErrUnknownKey].
//
// Keys are never used as they are: each purpose (cookie signing, cookie
// encryption, XSRF cookie signing, XSRF token binding) gets its own key,
// derived from the secret and the key id with HKDF-SHA256
// ([crypto/hkdf]), so no two purposes ever share a key.
//
// Rotation: put the new key first and keep the old one after it
// ("new:…,old:…") until every value signed with the old key has expired
// (the maximum age, 31 days by default), then remove it.
//
// A Keyring is immutable and safe for concurrent use. It prints its key
// ids only.
type Keyring struct {
	describer
	keys []Key
}

// NewKeyring returns a keyring whose current key is current and whose
// other keys verify only. Ids must be valid and distinct, secrets
// non-zero and distinct.
func NewKeyring(current Key, previous ...Key) (*Keyring, error) {
	keys := append([]Key{current}, previous...)
	if len(keys) > maxKeys {
		return nil, fmt.Errorf("%w: %d keys, at most %d", ErrMalformed, len(keys), maxKeys)
	}
	for i, k := range keys {
		if !validKeyID(k.ID) {
			return nil, fmt.Errorf("%w: key %d: id must be 1 to %d characters from A-Z a-z 0-9 - _",
				ErrMalformed, i+1, maxKeyIDLen)
		}
		if k.Secret.IsZero() {
			return nil, fmt.Errorf("%w: key %q has no secret", ErrMalformed, k.ID)
		}
		for _, o := range keys[:i] {
			if o.ID == k.ID {
				return nil, fmt.Errorf("%w: key id %q appears twice", ErrMalformed, k.ID)
			}
			if o.Secret.Equal(k.Secret) {
				return nil, fmt.Errorf("%w: keys %q and %q have the same secret", ErrMalformed, o.ID, k.ID)
			}
		}
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return &Keyring{
		describer: describer{"cookiesecret.Keyring{current: " + keys[0].ID + ", keys: " + strings.Join(ids, " ") + "}"},
		keys:      keys,
	}, nil
}

// ParseKeyring parses "id:base64,id:base64,…": each secret is parsed and
// validated with [ParseSecret], and the first key is the current one.
// Entries may also be separated by white space. A single secret without an
// id is accepted and gets the id "0"; name it "0:…" when you rotate.
//
// Errors name the entry and say what is wrong, never the secret.
func ParseKeyring(text string) (*Keyring, error) {
	entries := strings.FieldsFunc(text, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: empty keyring; generate a key with: %s", ErrMalformed, generateCommand)
	}
	if len(entries) > maxKeys {
		return nil, fmt.Errorf("%w: %d keys, at most %d", ErrMalformed, len(entries), maxKeys)
	}
	keys := make([]Key, 0, len(entries))
	for i, e := range entries {
		id, text, found := strings.Cut(e, ":")
		if !found {
			if len(entries) > 1 {
				return nil, fmt.Errorf("%w: entry %d has no key id (write id:base64)", ErrMalformed, i+1)
			}
			id, text = "0", e
		}
		if !validKeyID(id) {
			return nil, fmt.Errorf("%w: entry %d: key id must be 1 to %d characters from A-Z a-z 0-9 - _",
				ErrMalformed, i+1, maxKeyIDLen)
		}
		s, err := ParseSecret(text)
		if err != nil {
			// Name the entry by position: if the text was a raw secret
			// with a colon in it, "id" is part of the secret.
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
		keys = append(keys, Key{ID: id, Secret: s})
	}
	return NewKeyring(keys[0], keys[1:]...)
}

// LoadKeyring reads a keyring from the environment variable name, or,
// when name is unset or empty, from the file named by name+"_FILE".
// Setting both is an error, as is setting neither. The text is parsed
// with [ParseKeyring].
func LoadKeyring(name string) (*Keyring, error) {
	text, err := loadText(name)
	if err != nil {
		return nil, err
	}
	k, err := ParseKeyring(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return k, nil
}

// ReadKeyringFile reads a keyring from a file (at most 64 KiB) and parses
// it with [ParseKeyring].
func ReadKeyringFile(path string) (*Keyring, error) {
	text, err := readSmallFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKeyring(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Current returns the id of the key that signs new values.
func (k *Keyring) Current() string { return k.keys[0].ID }

// IDs returns the key ids, current first.
func (k *Keyring) IDs() []string {
	ids := make([]string, len(k.keys))
	for i, key := range k.keys {
		ids[i] = key.ID
	}
	return ids
}

// Keys returns the keys, current first, for tools that write a keyring
// out again (rotation). The secrets still never print.
func (k *Keyring) Keys() []Key { return slices.Clone(k.keys) }

// Key purposes: every derived key is bound to one of these and to its key
// id, so signing, encryption and XSRF never share a key.
const (
	purposeCookieMAC          = "cookie/signed/hmac-sha256"
	purposeEncryptedCookieMAC = "cookie/encrypted/hmac-sha256"
	purposeEncryptedCookieAES = "cookie/encrypted/aes-256-ctr"
	purposeXSRFCookieMAC      = "xsrf/cookie/hmac-sha256"
	purposeXSRFBind           = "xsrf/token/hmac-sha256"
)

// hkdfSalt separates this package's keys from any other use of the same
// secret.
const hkdfSalt = "github.com/stormcellar/stormcellar/cookiesecret v1"

// derive returns the 32-byte key for purpose and key id from secret.
func derive(secret Secret, purpose, id string) []byte {
	key, err := hkdf.Key(sha256.New, secret.bytes(), []byte(hkdfSalt), purpose+"\x00"+id, 32)
	if err != nil {
		// Only possible for an output longer than 255 hash blocks.
		panic("cookiesecret: hkdf: " + err.Error())
	}
	return key
}

func validKeyID(id string) bool {
	if id == "" || len(id) > maxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
