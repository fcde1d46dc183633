package api

import "github.com/grace-coaching/grace/models"

// STUB: removed once every handler is written.
var errNotImplemented = models.E(models.KindUnavailable, "not_implemented", "Not implemented yet.")
