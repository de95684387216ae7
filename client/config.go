package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
)

// DefaultDialTimeout bounds New's wait for a manager that answers.
const DefaultDialTimeout = 5 * time.Second

// Config says which manager to reach and how.
type Config struct {
	// SocketPath is the path of a manager's unix control socket. Exactly
	// one of SocketPath and Addrs must be set.
	SocketPath string
	// Addrs are host:port addresses of managers' remote APIs, tried in
	// order: New connects to the first that answers, and the client moves
	// on to the next when that connection breaks.
	Addrs []string

	// TLS, when set, secures the connections to Addrs (the control socket
	// is protected by its file mode and always plaintext). Nil: plaintext.
	TLS *tls.Config
	// DialOptions are added to the client's own; for credentials other
	// than TLS, interceptors, or a custom dialer.
	DialOptions []grpc.DialOption
	// DialTimeout bounds New's wait for a manager that answers. Default
	// DefaultDialTimeout; the context given to New may end it sooner.
	DialTimeout time.Duration
}

// validate checks c and names the first bad value.
func (c *Config) validate() error {
	switch {
	case c.SocketPath == "" && len(c.Addrs) == 0:
		return errors.New("client: give a control socket path or at least one manager address")
	case c.SocketPath != "" && len(c.Addrs) > 0:
		return fmt.Errorf("client: give a control socket (%s) or manager addresses (%s), not both",
			c.SocketPath, strings.Join(c.Addrs, ","))
	case c.DialTimeout < 0:
		return fmt.Errorf("client: dial timeout %v must not be negative", c.DialTimeout)
	}
	for _, a := range c.Addrs {
		if a == "" {
			return errors.New("client: an empty manager address was given")
		}
	}
	return nil
}
