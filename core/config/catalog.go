package config

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"unicode"

	"github.com/hashicorp/hcl/v2"
)

// Flavor is one entry of the flavor catalog: the size an instance is built
// with. Clients name it by ID (flavorRef) or by Name.
type Flavor struct {
	// ID is the block's label, e.g. "m1.small".
	ID string `hcl:"id,label"`
	// Name is the display name; it defaults to ID.
	Name   string `hcl:"name,optional"`
	VCPUs  int    `hcl:"vcpus"`
	RAMMB  int    `hcl:"ram_mb"`
	DiskGB int    `hcl:"disk_gb"`

	IDRange     hcl.Range `hcl:"id,label_range"`
	NameRange   hcl.Range `hcl:"name,attr_range"`
	VCPUsRange  hcl.Range `hcl:"vcpus,attr_range"`
	RAMMBRange  hcl.Range `hcl:"ram_mb,attr_range"`
	DiskGBRange hcl.Range `hcl:"disk_gb,attr_range"`
	DefRange    hcl.Range `hcl:",def_range"`
}

// Image is one entry of the image catalog: what an instance boots from.
// Clients name it by ID (imageRef) or by Name.
type Image struct {
	// ID is the block's label, e.g. "cirros".
	ID string `hcl:"id,label"`
	// Name is the display name; it defaults to ID.
	Name string `hcl:"name,optional"`
	// File is the image file as an absolute path (resolved against the
	// config's directory), or "" when the image has a Source instead.
	File string `hcl:"file,optional"`
	// Source is what the driver is given: File when the image is a file,
	// else the source string as written (opaque to Lucid, e.g.
	// "fake://cirros").
	Source string `hcl:"source,optional"`
	// DiskFormat is Glance's: ami, ari, aki, vhd, vhdx, vmdk, raw, qcow2,
	// vdi, iso or ploop. It defaults to "qcow2" when the
	// file (or source) ends in ".qcow2", else "raw".
	DiskFormat string `hcl:"disk_format,optional"`
	// MinRAMMB and MinDiskGB are the least a flavor must offer to boot
	// the image (>= 0; 0 means no minimum).
	MinRAMMB  int `hcl:"min_ram_mb,optional"`
	MinDiskGB int `hcl:"min_disk_gb,optional"`

	IDRange         hcl.Range `hcl:"id,label_range"`
	NameRange       hcl.Range `hcl:"name,attr_range"`
	FileRange       hcl.Range `hcl:"file,attr_range"`
	SourceRange     hcl.Range `hcl:"source,attr_range"`
	DiskFormatRange hcl.Range `hcl:"disk_format,attr_range"`
	MinRAMMBRange   hcl.Range `hcl:"min_ram_mb,attr_range"`
	MinDiskGBRange  hcl.Range `hcl:"min_disk_gb,attr_range"`
	DefRange        hcl.Range `hcl:",def_range"`
}

// diskFormats are the disk_format values an image may declare: Glance's.
func diskFormats() []string {
	return []string{"ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"}
}

// Flavor finds a flavor by ID, else by name. Validation guarantees that
// no name is another flavor's ID and no two flavors share a name, so the
// answer is never ambiguous.
func (c *Config) Flavor(idOrName string) (Flavor, bool) {
	i := lookup(c.Flavors, idOrName, func(f Flavor) (string, string) { return f.ID, f.Name })
	if i < 0 {
		return Flavor{}, false
	}
	return c.Flavors[i], true
}

// Image finds an image by ID, else by name, like Flavor.
func (c *Config) Image(idOrName string) (Image, bool) {
	i := lookup(c.Images, idOrName, func(im Image) (string, string) { return im.ID, im.Name })
	if i < 0 {
		return Image{}, false
	}
	return c.Images[i], true
}

func lookup[T any](entries []T, idOrName string, key func(T) (id, name string)) int {
	if idOrName == "" {
		return -1
	}
	if i := slices.IndexFunc(entries, func(e T) bool { id, _ := key(e); return id == idOrName }); i >= 0 {
		return i
	}
	return slices.IndexFunc(entries, func(e T) bool { _, name := key(e); return name == idOrName })
}

// entry is what the catalogs share: an ID label and an optional name.
type entry struct {
	id        string
	idRange   hcl.Range
	name      *string
	nameRange hcl.Range
}

// checkCatalog checks the IDs and names of one catalog (kind is "flavor"
// or "image") and defaults each name to its ID. IDs must be valid and
// unique; a name may not be another entry's ID (a lookup by that name
// would find the other entry) nor another entry's name.
func checkCatalog(kind string, entries []entry) hcl.Diagnostics {
	var diags hcl.Diagnostics
	ids := map[string]hcl.Range{}
	for _, e := range entries {
		if msg := badID(e.id); msg != "" {
			diags = append(diags, errAt(e.idRange, "Invalid "+kind+" id", fmt.Sprintf("%s id %q %s.", capital(kind), e.id, msg)))
			continue
		}
		if prev, dup := ids[e.id]; dup {
			diags = append(diags, errAt(e.idRange, "Duplicate "+kind, fmt.Sprintf("%s %q is already defined at %s.", capital(kind), e.id, pos(prev))))
			continue
		}
		ids[e.id] = e.idRange
	}
	names := map[string]hcl.Range{}
	for _, e := range entries {
		if !set(e.nameRange) {
			*e.name = e.id
			continue
		}
		n := *e.name
		switch {
		case n == "":
			diags = append(diags, errAt(e.nameRange, "Empty "+kind+" name", fmt.Sprintf("Remove name to use the id %q, or give a display name.", e.id)))
		case strings.IndexFunc(n, unicode.IsControl) >= 0:
			diags = append(diags, errAt(e.nameRange, "Invalid "+kind+" name", fmt.Sprintf("Name %q contains a control character.", n)))
		case n == e.id:
		default:
			if other, clash := ids[n]; clash {
				diags = append(diags, errAt(e.nameRange, "Ambiguous "+kind+" name", fmt.Sprintf("%q is the id of the %s at %s, so a lookup of %q would find that %s, never this one.", n, kind, pos(other), n, kind)))
			} else if prev, dup := names[n]; dup {
				diags = append(diags, errAt(e.nameRange, "Duplicate "+kind+" name", fmt.Sprintf("The %s at %s is already named %q; names must be unique so that a lookup by name finds one %s.", kind, pos(prev), n, kind)))
			} else {
				names[n] = e.nameRange
			}
		}
	}
	return diags
}

// badID says what is wrong with a catalog label, or "" if nothing is: IDs
// appear in URLs and client commands.
func badID(id string) string {
	switch {
	case id == "":
		return "is empty"
	case strings.Contains(id, "/"):
		return "may not contain '/'"
	case strings.IndexFunc(id, unicode.IsSpace) >= 0:
		return "may not contain whitespace"
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return "may not contain control characters"
	}
	return ""
}

func capital(s string) string {
	return strings.ToUpper(s[:1]) + s[1:]
}

func (c *Config) validateFlavors() hcl.Diagnostics {
	entries := make([]entry, len(c.Flavors))
	for i := range c.Flavors {
		f := &c.Flavors[i]
		entries[i] = entry{id: f.ID, idRange: f.IDRange, name: &f.Name, nameRange: f.NameRange}
	}
	diags := checkCatalog("flavor", entries)
	for _, f := range c.Flavors {
		atLeast("vcpus", f.VCPUs, 1, f.VCPUsRange, &diags)
		atLeast("ram_mb", f.RAMMB, 1, f.RAMMBRange, &diags)
		atLeast("disk_gb", f.DiskGB, 0, f.DiskGBRange, &diags)
	}
	return diags
}

func (c *Config) validateImages(o Options) hcl.Diagnostics {
	entries := make([]entry, len(c.Images))
	for i := range c.Images {
		im := &c.Images[i]
		entries[i] = entry{id: im.ID, idRange: im.IDRange, name: &im.Name, nameRange: im.NameRange}
	}
	diags := checkCatalog("image", entries)
	for i := range c.Images {
		im := &c.Images[i]
		hasFile, hasSource := set(im.FileRange), set(im.SourceRange)
		switch {
		case hasFile && hasSource:
			diags = append(diags, errAt(im.SourceRange, "Conflicting image source", fmt.Sprintf("Image %q sets file at %s; set file (a path) or source (passed to the driver as is), not both.", im.ID, pos(im.FileRange))))
		case !hasFile && !hasSource:
			diags = append(diags, errAt(im.DefRange, "Missing image source", fmt.Sprintf("Image %q needs file = \"images/%s.qcow2\" (a path) or source = \"...\" (passed to the driver as is).", im.ID, im.ID)))
		case hasFile && im.File == "":
			diags = append(diags, errAt(im.FileRange, "Empty image file", "file must name the image file."))
		case hasSource && im.Source == "":
			diags = append(diags, errAt(im.SourceRange, "Empty image source", "source must say where the driver finds the image."))
		case hasFile:
			im.File = c.Path(im.File)
			im.Source = im.File
			if !o.SkipFileChecks {
				if fi, err := os.Stat(im.File); err != nil {
					diags = append(diags, errAt(im.FileRange, "Image file not found", fmt.Sprintf("No file at %s.", im.File)))
				} else if fi.IsDir() {
					diags = append(diags, errAt(im.FileRange, "Image file is a directory", fmt.Sprintf("%s is a directory, not an image file.", im.File)))
				}
			}
		}
		if set(im.DiskFormatRange) {
			if !slices.Contains(diskFormats(), im.DiskFormat) {
				diags = append(diags, errAt(im.DiskFormatRange, "Unknown disk_format", fmt.Sprintf("%q is not a disk format; use one of %s.", im.DiskFormat, strings.Join(diskFormats(), ", "))))
			}
		} else if strings.HasSuffix(strings.ToLower(im.Source), ".qcow2") {
			im.DiskFormat = "qcow2"
		} else {
			im.DiskFormat = "raw"
		}
		atLeast("min_ram_mb", im.MinRAMMB, 0, im.MinRAMMBRange, &diags)
		atLeast("min_disk_gb", im.MinDiskGB, 0, im.MinDiskGBRange, &diags)
	}
	return diags
}
