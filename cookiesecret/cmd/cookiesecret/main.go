// Command cookiesecret generates secret keys for package cookiesecret.
//
// With no flags it prints one keyring entry, "id:base64", with a new
// 32-byte key from crypto/rand and an id made of the date:
//
//	$ go run github.com/stormcellar/stormcellar/cookiesecret/cmd/cookiesecret
//	k20250614:3q2+7w…=
//
// Put the line in the environment variable (or the file named by
// VAR_FILE) that the service passes to cookiesecret.LoadKeyring.
//
// To rotate, -rotate VAR reads the current keyring from VAR (or VAR_FILE),
// checks it, and prints a new keyring: the new key first (it signs from
// now on), then the keys kept to verify what they signed (-keep, default
// 1: the key that was current). Deploy it, and remove the old key after
// the cookies' maximum age (31 days by default).
//
//	$ COOKIE_KEYS=$(go run …/cmd/cookiesecret -rotate COOKIE_KEYS)
//
// -tornado prints a cookie_secret for a Tornado application instead: 44
// characters of base64 text whose bytes Tornado uses as the key (and
// cookiesecret.NewSecret accepts).
//
// The key is printed on standard output only; nothing is logged.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/stormcellar/stormcellar/cookiesecret"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, time.Now))
}

func run(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	fs := flag.NewFlagSet("cookiesecret", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("id", "", "key id (default k + today's date, UTC)")
	rotate := fs.String("rotate", "", "environment variable holding the current keyring (or VAR_FILE naming a file); print the rotated keyring")
	keep := fs.Int("keep", 1, "with -rotate: how many existing keys to keep after the new one")
	tornado := fs.Bool("tornado", false, "print a cookie_secret for a Tornado application")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cookiesecret [-id ID] [-rotate VAR [-keep N]] [-tornado]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	secret := cookiesecret.GenerateSecret()
	if *tornado {
		if *rotate != "" || *id != "" {
			fmt.Fprintln(stderr, "cookiesecret: -tornado takes no other flag")
			return 2
		}
		fmt.Fprintln(stdout, secret.Reveal())
		return 0
	}
	if *id == "" {
		*id = "k" + now().UTC().Format("20060102")
	}
	if *rotate == "" {
		if _, err := cookiesecret.NewKeyring(cookiesecret.Key{ID: *id, Secret: secret}); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintln(stdout, *id+":"+secret.Reveal())
		return 0
	}
	if *keep < 0 || *keep > 15 {
		fmt.Fprintln(stderr, "cookiesecret: -keep must be 0 to 15")
		return 2
	}
	ring, err := cookiesecret.LoadKeyring(*rotate)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	old := ring.Keys()
	newID := *id
	for n := 2; slices.Contains(ring.IDs(), newID); n++ {
		newID = fmt.Sprintf("%s-%d", *id, n)
	}
	entries := []string{newID + ":" + secret.Reveal()}
	for _, k := range old[:min(*keep, len(old))] {
		entries = append(entries, k.ID+":"+k.Secret.Reveal())
	}
	text := strings.Join(entries, ",")
	if _, err := cookiesecret.ParseKeyring(text); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, text)
	return 0
}
