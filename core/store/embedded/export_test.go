package embedded

// PeerAddr is the member's peer listener address, host:port.
func (m *Member) PeerAddr() string { return m.etcd.Peers[0].Addr().String() }
