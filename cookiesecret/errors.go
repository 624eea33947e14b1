package cookiesecret

import "errors"

// Errors returned when a secret or a keyring is refused. They are returned
// wrapped, with a message that says why and what to do; test them with
// [errors.Is].
var (
	// ErrTooShort: the secret has fewer than [MinSecretLen] bytes.
	ErrTooShort = errors.New("cookiesecret: secret too short")
	// ErrWeak: the secret is predictable (a repeated byte, a repeated
	// pattern, too few distinct characters, plain words).
	ErrWeak = errors.New("cookiesecret: secret too weak")
	// ErrSample: the secret is a value published in documentation or
	// examples, which attackers try first.
	ErrSample = errors.New("cookiesecret: secret is a published sample value")
	// ErrMalformed: the text is not a secret or keyring in the expected
	// format.
	ErrMalformed = errors.New("cookiesecret: malformed secret or keyring")
	// ErrNotSet: neither the environment variable nor its _FILE variant
	// is set.
	ErrNotSet = errors.New("cookiesecret: secret not configured")
)

// ErrInvalid is matched (with [errors.Is]) by every error that refuses a
// cookie, a signed value or an XSRF token at request time: [ErrTampered],
// [ErrExpired], [ErrFuture], [ErrUnknownKey], [ErrTooLarge] and
// [ErrVersion]. The specific error belongs in the log; the client must only
// learn that the value was refused (send it through httperr, which never
// shows the cause).
var ErrInvalid = errors.New("cookiesecret: invalid value")

// invalidError is a request-time refusal; it matches ErrInvalid too.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

// Request-time refusals. Each also matches [ErrInvalid].
var (
	// ErrTampered: the value is malformed, truncated, signed by another
	// key or for another cookie name, or altered.
	ErrTampered error = &invalidError{"cookiesecret: value tampered or malformed"}
	// ErrExpired: the value is older than the server-side maximum age.
	ErrExpired error = &invalidError{"cookiesecret: value expired"}
	// ErrFuture: the value's timestamp is later than now plus the allowed
	// clock skew: it was minted with a wrong clock or by someone holding
	// the key who wanted it to outlive its maximum age.
	ErrFuture error = &invalidError{"cookiesecret: value timestamp in the future"}
	// ErrUnknownKey: the value names a key id (or Tornado key version)
	// that is not in the keyring, typically a key already removed by
	// rotation.
	ErrUnknownKey error = &invalidError{"cookiesecret: value signed with an unknown key"}
	// ErrTooLarge: the value is over the size limit. Decoders refuse it
	// before doing any cryptography.
	ErrTooLarge error = &invalidError{"cookiesecret: value too large"}
	// ErrVersion: a Tornado signed value whose format version is not
	// accepted (v1 without TornadoOptions.InsecureAllowV1, or v3 and up).
	ErrVersion error = &invalidError{"cookiesecret: signed-value version not accepted"}
)
