package identity

import (
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// CloudName is the name of Lucid's entry in the clouds.yaml it writes:
// `openstack --os-cloud lucid …`.
const CloudName = "lucid"

// Cloud is one clouds.yaml entry with password auth, as openstackclient,
// openstacksdk and gophercloud's clientconfig read it.
type Cloud struct {
	AuthType           string    `yaml:"auth_type"`
	Auth               CloudAuth `yaml:"auth"`
	IdentityAPIVersion int       `yaml:"identity_api_version,omitempty"`
}

// CloudAuth is a clouds.yaml entry's auth section.
type CloudAuth struct {
	AuthURL           string `yaml:"auth_url"`
	Username          string `yaml:"username"`
	Password          string `yaml:"password"`
	ProjectName       string `yaml:"project_name"`
	UserDomainName    string `yaml:"user_domain_name"`
	ProjectDomainName string `yaml:"project_domain_name"`
}

type cloudsFile struct {
	Clouds map[string]Cloud `yaml:"clouds"`
}

// PasswordCloud is a clouds.yaml entry for user in project at authURL
// (the /identity/v3 URL).
func PasswordCloud(authURL, user, password, project string) Cloud {
	return Cloud{AuthType: "password", IdentityAPIVersion: 3, Auth: CloudAuth{
		AuthURL: authURL, Username: user, Password: password, ProjectName: project,
		UserDomainName: "Default", ProjectDomainName: "Default",
	}}
}

// PrepareCloudsYAML writes a clouds.yaml holding cloud as CloudName to a
// temporary file beside path (mode 0600: it holds a password; its
// directory is created 0700 if missing). commit renames it to path;
// abort removes it. So a password is never half-written, and Bootstrap
// stores the user only once the file is ready.
func PrepareCloudsYAML(path string, cloud Cloud) (commit func() error, abort func(), err error) {
	b, err := yaml.Marshal(cloudsFile{Clouds: map[string]Cloud{CloudName: cloud}})
	if err != nil {
		return nil, nil, err
	}
	b = append([]byte("# Written by lucid serve on its first start: the admin's credentials.\n"+
		"# Keep it secret. openstack --os-cloud lucid reads it when it is in\n"+
		"# ~/.config/openstack/ or named by OS_CLIENT_CONFIG_FILE.\n"), b...)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("identity: clouds.yaml: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".clouds.yaml-*")
	if err != nil {
		return nil, nil, fmt.Errorf("identity: clouds.yaml: %w", err)
	}
	tmp := f.Name()
	abort = func() { os.Remove(tmp) }
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600) // CreateTemp makes it 0600; say so anyway
	}
	if err != nil {
		abort()
		return nil, nil, fmt.Errorf("identity: write %s: %w", tmp, err)
	}
	commit = func() error {
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("identity: the admin's credentials are in %s, but moving them to %s failed: %w", tmp, path, err)
		}
		return nil
	}
	return commit, abort, nil
}

// ReadCloud reads the entry name of the clouds.yaml at path.
func ReadCloud(path, name string) (Cloud, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Cloud{}, err
	}
	var f cloudsFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		return Cloud{}, fmt.Errorf("%s: %w", path, err)
	}
	c, ok := f.Clouds[name]
	if !ok {
		return Cloud{}, fmt.Errorf("%s has no cloud %q", path, name)
	}
	return c, nil
}
