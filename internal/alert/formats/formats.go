// Package formats registers every alert format refuge reads with package
// alert. Import it for its side effect wherever alert.Parse is used:
//
//	import _ "github.com/refuge-project/refuge/internal/alert/formats"
package formats

import (
	// Their sniffers recognise disjoint documents, so order does not matter.
	_ "github.com/refuge-project/refuge/internal/alert/cap"
	_ "github.com/refuge-project/refuge/internal/alert/jma"
	_ "github.com/refuge-project/refuge/internal/alert/p2pquake"
	_ "github.com/refuge-project/refuge/internal/alert/shakealert"
	_ "github.com/refuge-project/refuge/internal/alert/usgs"
	_ "github.com/refuge-project/refuge/internal/alert/webhook"
)
