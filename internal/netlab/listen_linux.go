package netlab

import "net"

// Listen opens a listener inside the host's network namespace (a server
// the lab's other hosts reach), from a program in another namespace. The
// listener, once open, works from any thread; the caller closes it.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := h.inNamespace(func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}
