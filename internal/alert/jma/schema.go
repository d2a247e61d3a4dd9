package jma

import "encoding/xml"

// The namespaces of a JMA seismology/tsunami report.
const (
	nsReport       = "http://xml.kishou.go.jp/jmaxml1/"
	nsHead         = "http://xml.kishou.go.jp/jmaxml1/informationBasis1/"
	nsSeismology   = "http://xml.kishou.go.jp/jmaxml1/body/seismology1/"
	nsElementBasis = "http://xml.kishou.go.jp/jmaxml1/elementBasis1/"
)

// report is the part of a JMA XML document refuge reads. Elements it does
// not read (comments, station lists, long-period classes, …) are skipped.
type report struct {
	XMLName xml.Name
	Control control `xml:"Control"`
	Head    head    `xml:"Head"`
	Body    body    `xml:"Body"`
}

type control struct {
	XMLName          xml.Name
	Title            string `xml:"Title"`
	Status           string `xml:"Status"`
	EditorialOffice  string `xml:"EditorialOffice"`
	PublishingOffice string `xml:"PublishingOffice"`
}

type head struct {
	XMLName        xml.Name
	Title          string `xml:"Title"`
	ReportDateTime string `xml:"ReportDateTime"`
	EventID        string `xml:"EventID"`
	InfoType       string `xml:"InfoType"`
	Serial         string `xml:"Serial"`
	Headline       struct {
		Text string `xml:"Text"`
	} `xml:"Headline"`
}

type body struct {
	XMLName      xml.Name
	Earthquakes  []earthquake `xml:"Earthquake"`
	Intensity    *intensity   `xml:"Intensity"`
	Tsunami      *tsunami     `xml:"Tsunami"`
	NextAdvisory string       `xml:"NextAdvisory"`
}

type earthquake struct {
	OriginTime string `xml:"OriginTime"`
	Hypocenter struct {
		Area struct {
			Name        string       `xml:"Name"`
			Code        string       `xml:"Code"`
			Coordinates []coordinate `xml:"http://xml.kishou.go.jp/jmaxml1/elementBasis1/ Coordinate"`
		} `xml:"Area"`
	} `xml:"Hypocenter"`
	Magnitudes []magnitude `xml:"http://xml.kishou.go.jp/jmaxml1/elementBasis1/ Magnitude"`
}

type coordinate struct {
	Value       string `xml:",chardata"`
	Description string `xml:"description,attr"`
}

type magnitude struct {
	Value     string `xml:",chardata"`
	Type      string `xml:"type,attr"`
	Condition string `xml:"condition,attr"`
}

type intensity struct {
	Forecast    *intensityPart `xml:"Forecast"`
	Observation *intensityPart `xml:"Observation"`
}

// intensityPart is Body/Intensity/Forecast (EEW) or
// Body/Intensity/Observation (intensity reports).
type intensityPart struct {
	CodeDefine  codeDefine `xml:"CodeDefine"`
	MaxInt      string     `xml:"MaxInt"`
	ForecastInt *fromTo    `xml:"ForecastInt"`
	Prefs       []pref     `xml:"Pref"`
}

type codeDefine struct {
	Types []struct {
		XPath string `xml:"xpath,attr"`
		Name  string `xml:",chardata"`
	} `xml:"Type"`
}

// codeType returns the code type CodeDefine gives for xpath, or def.
func (c *codeDefine) codeType(xpath, def string) string {
	for _, t := range c.Types {
		if t.XPath == xpath {
			return t.Name
		}
	}
	return def
}

// fromTo is an EEW intensity forecast range (ForecastInt).
type fromTo struct {
	From string `xml:"From"`
	To   string `xml:"To"`
}

type pref struct {
	Name  string          `xml:"Name"`
	Code  string          `xml:"Code"`
	Areas []intensityArea `xml:"Area"`
}

type intensityArea struct {
	Name        string  `xml:"Name"`
	Code        string  `xml:"Code"`
	MaxInt      string  `xml:"MaxInt"`
	ForecastInt *fromTo `xml:"ForecastInt"`
	ArrivalTime string  `xml:"ArrivalTime"`
	Condition   string  `xml:"Condition"`
	Category    struct {
		Kind struct {
			Code string `xml:"Code"`
		} `xml:"Kind"`
	} `xml:"Category"`
}

type tsunami struct {
	Forecast *struct {
		CodeDefine codeDefine    `xml:"CodeDefine"`
		Items      []tsunamiItem `xml:"Item"`
	} `xml:"Forecast"`
}

type tsunamiItem struct {
	Area struct {
		Name string `xml:"Name"`
		Code string `xml:"Code"`
	} `xml:"Area"`
	Category struct {
		Kind struct {
			Name string `xml:"Name"`
			Code string `xml:"Code"`
		} `xml:"Kind"`
	} `xml:"Category"`
	FirstHeight *struct {
		ArrivalTime string `xml:"ArrivalTime"`
		Condition   string `xml:"Condition"`
	} `xml:"FirstHeight"`
	MaxHeight *struct {
		Heights []tsunamiHeight `xml:"http://xml.kishou.go.jp/jmaxml1/elementBasis1/ TsunamiHeight"`
	} `xml:"MaxHeight"`
}

type tsunamiHeight struct {
	Value       string `xml:",chardata"`
	Unit        string `xml:"unit,attr"`
	Description string `xml:"description,attr"`
}
