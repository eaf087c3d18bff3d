package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"

	"github.com/lucid-project/lucid/core/config"
	"github.com/lucid-project/lucid/core/identity"
	"github.com/lucid-project/lucid/core/store"
)

// quotas turns the config's quota blocks into the limits the Recorder
// checks and the API shows.
type quotas struct{ cfg *config.Config }

func (q quotas) Limits(project string) store.Limits {
	l := q.cfg.QuotaFor(project)
	return store.Limits{Instances: l.Instances, Cores: l.Cores, RAMMB: l.RAMMB}
}

// startIdentity starts the identity service when auth is enabled (nil
// when it is not), stopped by the node's Close.
func (n *Node) startIdentity(ctx context.Context) (*identity.Service, error) {
	cfg := n.Config
	if !cfg.AuthEnabled() {
		return nil, nil
	}
	var users []identity.User
	for _, u := range cfg.Users {
		iu := identity.User{Name: u.Name, PasswordHash: u.PasswordHash, Roles: map[string]identity.Role{}}
		for p, r := range u.Roles {
			iu.Roles[p] = identity.Role(r)
		}
		users = append(users, iu)
	}
	var projects []string
	for _, p := range cfg.Projects {
		projects = append(projects, p.Name)
	}
	svc, err := identity.New(ctx, identity.Config{Store: n.Store, Users: users, Projects: projects, TokenTTL: cfg.TokenTTL(),
		Logger: n.logger.With("component", "identity")})
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, func(context.Context) error { svc.Close(); return nil })
	return svc, nil
}

// authURL is the identity endpoint clients of this node use: the API's
// URL (http or https, scheme://addr), with a wildcard listen address
// replaced by loopback.
func authURL(base string) string {
	scheme, addr, _ := strings.Cut(base, "://")
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		addr = net.JoinHostPort(host, port)
	}
	return scheme + "://" + addr + "/identity/v3"
}

// bootstrapAdmin creates the admin user on the first start and writes its
// clouds.yaml (0600) before storing it, so the generated password is
// never lost half-way. On later starts it keeps the clouds.yaml pointing
// at the API's current address, and warns when the file is gone (the
// password is stored only hashed; it cannot be shown again).
func (n *Node) bootstrapAdmin(ctx context.Context, svc *identity.Service) error {
	path := n.Config.CloudsYAMLPath()
	url := authURL(n.URL)
	created, err := svc.Bootstrap(ctx, func(password string) (func() error, func(), error) {
		return identity.PrepareCloudsYAML(path, identity.PasswordCloud(url, identity.AdminUser, password, identity.AdminProject))
	})
	if err != nil {
		return fmt.Errorf("node: create the admin user: %w", err)
	}
	if created {
		n.logger.Info("created the admin user; its credentials are in clouds.yaml", "clouds_yaml", path)
		return nil
	}
	cloud, err := identity.ReadCloud(path, identity.CloudName)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, declared := configUser(n.Config, identity.AdminUser); !declared {
			n.logger.Warn("the admin's clouds.yaml is missing; its generated password is stored only hashed and cannot be shown again", "clouds_yaml", path)
		}
		return nil
	case err != nil:
		n.logger.Warn("cannot read the admin's clouds.yaml", "clouds_yaml", path, "err", err)
		return nil
	case cloud.Auth.AuthURL == url:
		return nil
	}
	cloud.Auth.AuthURL = url
	commit, _, err := identity.PrepareCloudsYAML(path, cloud)
	if err == nil {
		err = commit()
	}
	if err != nil {
		n.logger.Warn("cannot point clouds.yaml at the API's address", "clouds_yaml", path, "auth_url", url, "err", err)
	}
	return nil
}

func configUser(cfg *config.Config, name string) (config.User, bool) {
	for _, u := range cfg.Users {
		if u.Name == name {
			return u, true
		}
	}
	return config.User{}, false
}
