// Package compat is the compatibility suite: it starts a real Lucid node
// and drives the real OpenStack clients of Debian 12 (python3-
// openstackclient 6.0, python3-novaclient 18.1) against it, configured as
// README.md tells users to configure them, through a recording proxy.
// Every exchange the clients cause is then validated by validate.py
// against tempest 33's compute v2.1 response schemas, with tempest's own
// validator; an exchange no schema covers fails the suite.
//
// The package has only tests. The clients and tempest are Debian
// packages; `make test` installs them when they are missing
// (.ci/debian-packages), and the suite fails, saying so, without them.
package compat
