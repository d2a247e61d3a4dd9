package p2pquake

// item is one P2PQuake JSON API v2 record. The records of the supported
// codes share a few members (code, id, time, issue) and differ in the
// rest; one struct holds the union.
type item struct {
	Code       *int        `json:"code"`
	ID         string      `json:"id"`
	Time       string      `json:"time"`
	Type       string      `json:"type"` // 554: Full or Chime
	Cancelled  bool        `json:"cancelled"`
	Test       bool        `json:"test"` // 556
	Issue      *issue      `json:"issue"`
	Earthquake *earthquake `json:"earthquake"`
	Points     []point     `json:"points"` // 551
	Areas      []area      `json:"areas"`  // 552 (tsunami), 556 (EEW)
}

type issue struct {
	Source  string `json:"source"`
	Time    string `json:"time"`
	Type    string `json:"type"`
	Correct string `json:"correct"`
	EventID string `json:"eventId"` // 556
	Serial  string `json:"serial"`  // 556
}

type earthquake struct {
	Time        string      `json:"time"`       // 551
	OriginTime  string      `json:"originTime"` // 556
	Hypocenter  *hypocenter `json:"hypocenter"`
	MaxScale    *int        `json:"maxScale"`
	ArrivalTime string      `json:"arrivalTime"`
}

// hypocenter uses sentinels for unknown values: latitude and longitude
// -200, depth and magnitude -1.
type hypocenter struct {
	Name      string   `json:"name"`
	Latitude  *float64 `json:"latitude"`
	Longitude *float64 `json:"longitude"`
	Depth     *float64 `json:"depth"`
	Magnitude *float64 `json:"magnitude"`
}

type point struct {
	Pref   string `json:"pref"`
	Addr   string `json:"addr"`
	IsArea bool   `json:"isArea"`
	Scale  int    `json:"scale"`
}

// area is a tsunami forecast area (552) or an EEW forecast area (556).
type area struct {
	Name string `json:"name"`

	// 552
	Grade       string `json:"grade"`
	Immediate   bool   `json:"immediate"`
	FirstHeight *struct {
		ArrivalTime string `json:"arrivalTime"`
		Condition   string `json:"condition"`
	} `json:"firstHeight"`
	MaxHeight *struct {
		Description string   `json:"description"`
		Value       *float64 `json:"value"`
	} `json:"maxHeight"`

	// 556
	Pref        string   `json:"pref"`
	ScaleFrom   *float64 `json:"scaleFrom"`
	ScaleTo     *float64 `json:"scaleTo"`
	KindCode    string   `json:"kindCode"`
	ArrivalTime *string  `json:"arrivalTime"`
}
