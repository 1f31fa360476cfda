using System.Globalization;

namespace EptFuzz.Cli.Commands;

/// <summary>Numbers on the command line: decimal or 0x hex, '_' allowed, as in case files.</summary>
internal static class Numbers
{
    public static bool TryParse(string text, out ulong value)
    {
        var t = text.Replace("_", string.Empty, StringComparison.Ordinal);
        return t.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(t.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value)
            : ulong.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }
}
