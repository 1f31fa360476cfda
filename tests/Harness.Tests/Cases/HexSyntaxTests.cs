using System.Globalization;
using System.Text;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Tests.Cases;

/// <summary>The canonical hex form, which the printer formats without intermediate strings.</summary>
public sealed class HexSyntaxTests
{
    [Theory]
    [InlineData(0UL, "0x0")]
    [InlineData(0xabcUL, "0xabc")]
    [InlineData(0xffff_ffffUL, "0xffffffff")]
    [InlineData(0x1_0000_0000UL, "0x1_0000_0000")]
    [InlineData(0x12_3456_789aUL, "0x12_3456_789a")]
    [InlineData(0x1234_5678_9abc_def0UL, "0x1234_5678_9abc_def0")]
    [InlineData(ulong.MaxValue, "0xffff_ffff_ffff_ffff")]
    public void Hex_IsLowercaseAndGroupedBeyondEightDigits(ulong value, string expected)
    {
        Assert.Equal($"poke hpa=0x0 value={expected}", CasePrinter.PrintStep(new PokeStep(new Hpa(0), value)));
    }

    [Fact]
    public void Hex_MatchesTheGroupingRule()
    {
        var rng = new Xoshiro256(0x4e78);
        for (int i = 0; i < 20_000; i++)
        {
            ulong value = rng.Next() >> rng.Below(64);
            string text = CasePrinter.PrintStep(new PokeStep(new Hpa(0), value))["poke hpa=0x0 value=".Length..];
            string digits = value.ToString("x", CultureInfo.InvariantCulture);
            string expected = digits.Length <= 8 ? "0x" + digits : "0x" + Group(digits);
            Assert.Equal(expected, text);
        }
    }

    private static string Group(string digits)
    {
        var sb = new StringBuilder();
        int head = digits.Length % 4;
        sb.Append(digits, 0, head);
        for (int i = head; i < digits.Length; i += 4)
        {
            if (i > 0)
            {
                sb.Append('_');
            }

            sb.Append(digits, i, 4);
        }

        return sb.ToString();
    }
}
