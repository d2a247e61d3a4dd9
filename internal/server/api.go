package server

import (
	"fmt"
	"time"

	"github.com/refuge-project/refuge/internal/controller"
)

// sitesOf validates the request and returns the sites with deadlines.
func sitesOf(q *SitesRequest) ([]controller.SiteRequest, []FieldError) {
	var out []controller.SiteRequest
	var errs []FieldError
	add := func(field, site, deadline string) {
		d := DefaultDeadline
		if site == "" {
			errs = append(errs, FieldError{Field: field + "site", Message: "required: a site name"})
		}
		if deadline != "" {
			v, err := time.ParseDuration(deadline)
			switch {
			case err != nil:
				errs = append(errs, FieldError{Field: field + "deadline", Message: fmt.Sprintf("%q is not a duration such as 10m", deadline)})
			case v <= 0:
				errs = append(errs, FieldError{Field: field + "deadline", Message: "must be positive"})
			}
			d = v
		}
		out = append(out, controller.SiteRequest{Site: site, Deadline: d})
	}
	switch {
	case q.Site != "" && len(q.Sites) > 0:
		errs = append(errs, FieldError{Field: "sites", Message: "give either site or sites, not both"})
	case len(q.Sites) > 0:
		if q.Deadline != "" {
			errs = append(errs, FieldError{Field: "deadline", Message: "with sites, give each site's deadline"})
		}
		for i, s := range q.Sites {
			add(fmt.Sprintf("sites[%d].", i), s.Site, s.Deadline)
		}
	default:
		add("", q.Site, q.Deadline)
	}
	return out, errs
}
