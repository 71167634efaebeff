package main

import (
	"io"
	"strings"

	"github.com/mdp/qrterminal/v3"
)

// writeQR draws text as a QR code with half blocks, readable by a phone's
// WireGuard app straight from the terminal.
func writeQR(w io.Writer, text string) {
	qrterminal.GenerateWithConfig(text, qrterminal.Config{
		Level:          qrterminal.L,
		Writer:         w,
		HalfBlocks:     true,
		BlackChar:      qrterminal.BLACK_BLACK,
		WhiteBlackChar: qrterminal.WHITE_BLACK,
		WhiteChar:      qrterminal.WHITE_WHITE,
		BlackWhiteChar: qrterminal.BLACK_WHITE,
		QuietZone:      2,
	})
}

// qrText drops comment lines, which a phone app has no use for, so the code
// stays small.
func qrText(config string) string {
	var lines []string
	for _, l := range strings.Split(config, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines = append(lines, l)
		}
	}
	return strings.TrimSpace(strings.Join(lines, "\n")) + "\n"
}
