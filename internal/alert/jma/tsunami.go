package jma

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/refuge-project/refuge/internal/alert"
)

// tsunamiCategories maps the codes of 警報等情報要素／津波警報・注意報・予報
// (Item/Category/Kind/Code) to categories.
var tsunamiCategories = map[string]alert.TsunamiCategory{
	"00": alert.TsunamiNone,         // 津波なし
	"50": alert.TsunamiNone,         // 警報解除
	"60": alert.TsunamiNone,         // 津波注意報解除
	"51": alert.TsunamiWarning,      // 津波警報
	"52": alert.TsunamiMajorWarning, // 大津波警報
	"53": alert.TsunamiMajorWarning, // 大津波警報：発表
	"62": alert.TsunamiAdvisory,     // 津波注意報
	"71": alert.TsunamiForecastOnly, // 津波予報（若干の海面変動）
	"72": alert.TsunamiForecastOnly, // 津波予報（若干の海面変動）［津波注意報解除］
	"73": alert.TsunamiForecastOnly, // 津波予報（若干の海面変動）［津波警報解除］
}

const pathItem = "Body/Tsunami/Forecast/Item"

func readTsunami(items []tsunamiItem, a *alert.Alert) error {
	for i := range items {
		f, err := readTsunamiItem(alert.Nth(pathItem, i), &items[i])
		if err != nil {
			return err
		}
		a.Tsunami = append(a.Tsunami, f)
	}
	return nil
}

func readTsunamiItem(path string, it *tsunamiItem) (alert.TsunamiForecast, error) {
	f := alert.TsunamiForecast{Name: strings.TrimSpace(it.Area.Name), Code: strings.TrimSpace(it.Area.Code)}
	if f.Name == "" && f.Code == "" {
		return f, errAt(path+"/Area", "has neither Name nor Code")
	}
	code := strings.TrimSpace(it.Category.Kind.Code)
	cat, ok := tsunamiCategories[code]
	if !ok {
		return f, errAt(path+"/Category/Kind/Code", "unknown tsunami category code %q (%s)", code, it.Category.Kind.Name)
	}
	f.Category = cat
	if fh := it.FirstHeight; fh != nil {
		if s := strings.TrimSpace(fh.ArrivalTime); s != "" {
			t, err := alert.ParseTime(s)
			if err != nil {
				return f, errAt(path+"/FirstHeight/ArrivalTime", "%v", err)
			}
			f.ArrivalTime = t
		}
		f.Condition = strings.TrimSpace(fh.Condition)
		f.Immediate = alert.ImmediateTsunami(f.Condition)
	}
	if mh := it.MaxHeight; mh != nil && len(mh.Heights) > 0 {
		h := &mh.Heights[0]
		hpath := path + "/MaxHeight/TsunamiHeight"
		f.HeightText = strings.TrimSpace(h.Description)
		v, err := readHeight(h)
		if err != nil {
			return f, errAt(hpath, "%v", err)
		}
		f.MaxHeightM = v
	}
	return f, nil
}

// readHeight returns nil for a height JMA gives only in words (NaN).
func readHeight(h *tsunamiHeight) (*float64, error) {
	s := strings.TrimSpace(h.Value)
	if s == "NaN" || s == "" {
		return nil, nil
	}
	if h.Unit != "m" {
		return nil, fmt.Errorf("unit %q, want \"m\"", h.Unit)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= 0 && v <= 100) || math.IsInf(v, 0) {
		return nil, fmt.Errorf("%q is not a height in metres within [0, 100]", h.Value)
	}
	return &v, nil
}
