package threat

// tsunamiAreaNames maps the codes of JMA's 66 tsunami forecast areas
// (津波予報区) to their names. Formats that name areas without codes
// (P2PQuake 552) are matched to a site's tsunami_area through it.
var tsunamiAreaNames = map[string]string{
	"100": "北海道太平洋沿岸東部",
	"101": "北海道太平洋沿岸中部",
	"102": "北海道太平洋沿岸西部",
	"110": "北海道日本海沿岸北部",
	"111": "北海道日本海沿岸南部",
	"120": "オホーツク海沿岸",
	"200": "青森県日本海沿岸",
	"201": "青森県太平洋沿岸",
	"202": "陸奥湾",
	"210": "岩手県",
	"220": "宮城県",
	"230": "秋田県",
	"240": "山形県",
	"250": "福島県",
	"300": "茨城県",
	"310": "千葉県九十九里・外房",
	"311": "千葉県内房",
	"312": "東京湾内湾",
	"320": "伊豆諸島",
	"321": "小笠原諸島",
	"330": "相模湾・三浦半島",
	"340": "新潟県上中下越",
	"341": "佐渡",
	"350": "富山県",
	"360": "石川県能登",
	"361": "石川県加賀",
	"370": "福井県",
	"380": "静岡県",
	"390": "愛知県外海",
	"391": "伊勢・三河湾",
	"400": "三重県南部",
	"500": "京都府",
	"510": "大阪府",
	"520": "兵庫県北部",
	"521": "兵庫県瀬戸内海沿岸",
	"522": "淡路島南部",
	"530": "和歌山県",
	"540": "鳥取県",
	"550": "島根県出雲・石見",
	"551": "隠岐",
	"560": "岡山県",
	"570": "広島県",
	"580": "徳島県",
	"590": "香川県",
	"600": "愛媛県宇和海沿岸",
	"601": "愛媛県瀬戸内海沿岸",
	"610": "高知県",
	"700": "山口県日本海沿岸",
	"701": "山口県瀬戸内海沿岸",
	"710": "福岡県瀬戸内海沿岸",
	"711": "福岡県日本海沿岸",
	"712": "有明・八代海",
	"720": "佐賀県北部",
	"730": "長崎県西方",
	"731": "壱岐・対馬",
	"740": "熊本県天草灘沿岸",
	"750": "大分県瀬戸内海沿岸",
	"751": "大分県豊後水道沿岸",
	"760": "宮崎県",
	"770": "鹿児島県東部",
	"771": "種子島・屋久島地方",
	"772": "奄美群島・トカラ列島",
	"773": "鹿児島県西部",
	"800": "沖縄本島地方",
	"801": "大東島地方",
	"802": "宮古島・八重山地方",
}

// tsunamiAreaAliases are earlier names of areas that telegrams still carry
// (the 2011 samples spell 772 "奄美諸島・トカラ列島").
var tsunamiAreaAliases = map[string]string{
	"奄美諸島・トカラ列島": "772",
}

// TsunamiAreaName returns the name of a JMA tsunami forecast area code, or
// "" for an unknown code.
func TsunamiAreaName(code string) string { return tsunamiAreaNames[code] }

// tsunamiAreaCode returns the code of a forecast, from its code or, when it
// has none, from its name.
func tsunamiAreaCode(code, name string) string {
	if code != "" {
		return code
	}
	if c, ok := tsunamiAreaAliases[name]; ok {
		return c
	}
	return tsunamiAreaCodes[name]
}

// tsunamiAreaCodes maps names to codes.
var tsunamiAreaCodes = func() map[string]string {
	m := make(map[string]string, len(tsunamiAreaNames))
	for c, n := range tsunamiAreaNames {
		m[n] = c
	}
	return m
}()
