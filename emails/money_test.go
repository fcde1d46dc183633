package emails

import (
	"encoding/json"
	"testing"
)

func TestMoneyCountsMinorUnitsPerCurrency(t *testing.T) {
	tests := []struct {
		cents    any
		currency string
		want     string
	}{
		{int64(9700), "EUR", "97.00 EUR"},
		{float64(5), "usd", "0.05 USD"}, // outbox data comes back from JSON as float64
		{json.Number("1500"), "JPY", "1500 JPY"},
		{1234, "KWD", "1.234 KWD"},
		{int64(-250), "GBP", "-2.50 GBP"},
	}
	for _, tc := range tests {
		got, err := money(tc.cents, tc.currency)
		if err != nil || got != tc.want {
			t.Errorf("money(%v, %s) = %q, %v; want %q", tc.cents, tc.currency, got, err, tc.want)
		}
	}
	if _, err := money("ten", "EUR"); err == nil {
		t.Error("money accepted a string amount")
	}
}
