package emails

import (
	"encoding/json"
	"fmt"
	"strings"
)

// money shows an amount in minor units (as the domain stores money) the way
// a reader counts it: money(9700, "EUR") is "97.00 EUR". Outbox data comes
// back from JSON, so cents may be any number type.
func money(cents any, currency any) (string, error) {
	var n int64
	switch v := cents.(type) {
	case int:
		n = int64(v)
	case int64:
		n = v
	case float64:
		n = int64(v)
	case json.Number:
		i, err := v.Int64()
		if err != nil {
			return "", fmt.Errorf("money: %w", err)
		}
		n = i
	default:
		return "", fmt.Errorf("money: %T is not an amount", cents)
	}
	cur := strings.ToUpper(strings.TrimSpace(fmt.Sprint(currency)))
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	digits := minorDigits(cur)
	if digits == 0 {
		return fmt.Sprintf("%s%d %s", sign, n, cur), nil
	}
	unit := int64(1)
	for range digits {
		unit *= 10
	}
	return fmt.Sprintf("%s%d.%0*d %s", sign, n/unit, digits, n%unit, cur), nil
}

// minorDigits is how many decimals an ISO 4217 currency's minor unit has,
// as Stripe counts them.
func minorDigits(currency string) int {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "JOD", "KWD", "OMR", "TND":
		return 3
	}
	return 2
}
