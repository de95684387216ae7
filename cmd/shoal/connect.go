package main

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/client"
)

// defaultTimeout bounds a client command (the connection only, for watch).
const defaultTimeout = 15 * time.Second

// connFlags say which manager a client command reaches.
type connFlags struct {
	socket  string
	host    string
	timeout time.Duration
	tlsCert string
	tlsKey  string
	tlsCA   string
}

// Names of the client credential files, in the client directory.
const (
	clientCertFile = "client.crt"
	clientKeyFile  = "client.key"
	clientCAFile   = "ca.crt"
)

// addConnFlags adds the connection flags to a client command (or a group
// of them, as persistent flags).
func (a *app) addConnFlags(cmd *cobra.Command, persistent bool) {
	fs := cmd.Flags()
	if persistent {
		fs = cmd.PersistentFlags()
	}
	fs.StringVar(&a.conn.socket, "socket", "", "control socket of a local manager (env SHOAL_SOCKET; default: the one in the default state directory)")
	fs.StringVar(&a.conn.host, "host", "", "manager address(es) host:port[,host:port...], tried in order (env SHOAL_HOST)")
	fs.DurationVar(&a.conn.timeout, "timeout", defaultTimeout, "give up after this long")
	fs.StringVar(&a.conn.tlsCert, "tls-cert", "", "client certificate for --host (env SHOAL_TLS_CERT; default: client.crt in "+defaultClientDirHelp+")")
	fs.StringVar(&a.conn.tlsKey, "tls-key", "", "key of the client certificate (env SHOAL_TLS_KEY; default: client.key beside it)")
	fs.StringVar(&a.conn.tlsCA, "tls-ca", "", "the cluster's root CA certificate (env SHOAL_TLS_CA; default: ca.crt beside the client certificate)")
}

// tlsConfig loads the client certificate that remote use needs: from the
// flags, else the environment, else the client directory.
func (a *app) tlsConfig() (*tls.Config, error) {
	given := func(flag, env string) string {
		if flag != "" {
			return flag
		}
		return a.getenv(env)
	}
	// The key and the CA default to the files beside the certificate:
	// those of the client directory, or of the one --tls-cert names.
	cert := given(a.conn.tlsCert, "SHOAL_TLS_CERT")
	dir := a.defaultClientDir()
	if cert == "" {
		cert = filepath.Join(dir, clientCertFile)
	} else {
		dir = filepath.Dir(cert)
	}
	key := given(a.conn.tlsKey, "SHOAL_TLS_KEY")
	if key == "" {
		key = filepath.Join(dir, clientKeyFile)
	}
	caFile := given(a.conn.tlsCA, "SHOAL_TLS_CA")
	if caFile == "" {
		caFile = filepath.Join(dir, clientCAFile)
	}
	for _, f := range []string{cert, key, caFile} {
		if _, err := os.Stat(f); err != nil {
			return nil, usagef("reaching a manager over TCP needs a client certificate, and %s is missing: on a manager's host run 'shoal cluster client-cert', then copy its files here or point --tls-cert, --tls-key and --tls-ca at them", f)
		}
	}
	cfg, err := client.LoadTLS(cert, key, caFile)
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

// clientConfig resolves the connection flags, the environment and the
// default into a client configuration: a flag wins over the environment,
// which wins over the default socket.
func (a *app) clientConfig() (client.Config, error) {
	socket, host := a.conn.socket, a.conn.host
	if socket != "" && host != "" {
		return client.Config{}, usagef("--socket and --host exclude each other; give one")
	}
	if socket == "" && host == "" {
		socket, host = a.getenv("SHOAL_SOCKET"), a.getenv("SHOAL_HOST")
		if socket != "" && host != "" {
			return client.Config{}, usagef("both SHOAL_SOCKET and SHOAL_HOST are set; unset one, or choose with --socket or --host")
		}
	}
	if host != "" {
		var addrs []string
		for _, h := range strings.Split(host, ",") {
			if h = strings.TrimSpace(h); h != "" {
				addrs = append(addrs, h)
			}
		}
		if len(addrs) == 0 {
			return client.Config{}, usagef("--host %q names no address", host)
		}
		tlsCfg, err := a.tlsConfig()
		if err != nil {
			return client.Config{}, err
		}
		return client.Config{Addrs: addrs, TLS: tlsCfg}, nil
	}
	if socket == "" {
		socket = filepath.Join(a.defaultStateDir(), "control.sock")
	}
	return client.Config{SocketPath: socket}, nil
}

// connect returns a client and a context bounded by --timeout; the caller
// calls done when finished.
func (a *app) connect(ctx context.Context) (c *client.Client, callCtx context.Context, done func(), err error) {
	if a.conn.timeout <= 0 {
		return nil, nil, nil, usagef("--timeout %v must be positive", a.conn.timeout)
	}
	cfg, err := a.clientConfig()
	if err != nil {
		return nil, nil, nil, err
	}
	callCtx, cancel := context.WithTimeout(ctx, a.conn.timeout)
	cfg.DialTimeout = a.conn.timeout
	c, err = client.New(callCtx, cfg)
	if err != nil {
		cancel()
		if client.IsUnavailable(err) {
			err = status.Error(codes.Unavailable, status.Convert(err).Message()+connectHint(status.Convert(err).Message()))
		}
		return nil, nil, nil, err
	}
	return c, callCtx, func() { c.Close(); cancel() }, nil
}

// connectHint is what to do about a failed connection whose message is
// msg: start a manager only when none is there; a manager that answered
// (its TLS did not verify, it is locked) says what it lacks itself.
func connectHint(msg string) string {
	switch {
	case strings.Contains(msg, "x509") || strings.Contains(msg, "tls:") || strings.Contains(msg, "certificate"):
		return "; check that --tls-ca (ca.crt) is the root certificate of the cluster at --host, and --tls-cert one it issued"
	case strings.Contains(msg, "locked"):
		return ""
	case strings.Contains(msg, "connection refused") || strings.Contains(msg, "no control socket") ||
		strings.Contains(msg, "no such file") || strings.Contains(msg, "answered in time"):
		return "; start one with 'shoal manager' or 'shoal dev', or choose another with --socket (SHOAL_SOCKET) or --host (SHOAL_HOST)"
	}
	return ""
}

// withClient connects as the connection flags say, runs fn with the client
// and a context bounded by --timeout, and closes the connection.
func (a *app) withClient(ctx context.Context, fn func(ctx context.Context, c *client.Client) error) error {
	c, callCtx, done, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	return fn(callCtx, c)
}
