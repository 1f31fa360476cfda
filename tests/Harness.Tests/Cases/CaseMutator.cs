using System.Text;

namespace EptFuzz.Harness.Tests.Cases;

/// <summary>
/// Turns valid case files into hostile ones: byte flips, truncation, huge and negative numbers,
/// unknown verbs, duplicate keys, long lines, floods of blank and comment lines, runs of
/// meaningless nesting, and random garbage. Deterministic for a seed.
/// </summary>
internal sealed class CaseMutator
{
    private static readonly string[] Numbers =
    [
        "-1", "-0x1000", "0x1_0000_0000_0000_0000", "18446744073709551616", "99999999999999999999999999999999",
        "0xffff_ffff_ffff_ffff", "18446744073709551615", "0x", "0x_", "1__0", "0x10_0000_0000_0000", "4K", "2M", "1G", "0",
    ];

    private static readonly string[] Words =
    [
        "zork", "frobnicate", "MAP", "eptcase", "eptcase 2", "=>", "=> =>", "=> ok", "=> violation", "=> entry", "=> vmentry",
        "perm=rr", "perm=rwxuq", "mt=9", "level=0", "level=pml6e", "cpl=2", "gpa=", "=", "==", "=1", "a=b=c", "tables=5-3",
        "tables=0x1000-", "paging=4level", "raw=0x1e", "#", "\t", "\r", "\u00e9", "\u0000", "\uD800", "\uFFFE",
    ];

    private static readonly string[] Nesting = ["(", "[", "{", "=>", "=", "-", "#", "\"", "'", "\\", "0x"];

    private readonly Xoshiro256 rng;

    public CaseMutator(ulong seed)
    {
        rng = new Xoshiro256(seed);
    }

    public string Mutate(string text)
    {
        int rounds = 1 + rng.Below(3);
        for (int i = 0; i < rounds; i++)
        {
            text = MutateOnce(text);
        }

        return text;
    }

    /// <summary>A flip of one byte of the UTF-8 encoding (may make it invalid UTF-8).</summary>
    public byte[] FlipBytes(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        int flips = 1 + rng.Below(4);
        for (int i = 0; i < flips && bytes.Length > 0; i++)
        {
            bytes[rng.Below(bytes.Length)] ^= (byte)(1 << rng.Below(8));
        }

        return bytes;
    }

    private string MutateOnce(string text)
    {
        int at = text.Length == 0 ? 0 : rng.Below(text.Length + 1);
        switch (rng.Below(14))
        {
            case 0: // flip a character's bits
                if (text.Length == 0)
                {
                    return text;
                }

                int i = rng.Below(text.Length);
                return string.Concat(text.AsSpan(0, i), ((char)(text[i] ^ (1 << rng.Below(8)))).ToString(), text.AsSpan(i + 1));
            case 1: // truncate
                return text[..at];
            case 2: // replace a number-looking run with a hostile number
                return ReplaceToken(text, rng.Pick(Numbers));
            case 3: // insert a hostile number
                return text.Insert(at, rng.Pick(Numbers));
            case 4: // insert a word or symbol
                return text.Insert(at, rng.Pick(Words));
            case 5: // an unknown verb on its own line
                return text.Insert(LineStart(text, at), rng.Pick(Words) + " gpa=0x1000\n");
            case 6: // duplicate a key=value token on its line
                return DuplicateToken(text);
            case 7: // a very long line
                return text.Insert(LineStart(text, at), new string(rng.Chance(2) ? '1' : '#', 3000 + rng.Below(3000)) + "\n");
            case 8: // many blank or comment lines
                return text.Insert(LineStart(text, at), string.Concat(Enumerable.Repeat(rng.Chance(2) ? "\n" : "# c\n", 1 + rng.Below(2000))));
            case 9: // deep nesting of nothing
                return text.Insert(at, string.Concat(Enumerable.Repeat(rng.Pick(Nesting), 1 + rng.Below(3000))));
            case 10: // random garbage
                var sb = new StringBuilder();
                int n = 1 + rng.Below(200);
                for (int k = 0; k < n; k++)
                {
                    sb.Append((char)(rng.Chance(8) ? rng.Below(0x3000) : 0x20 + rng.Below(0x5f)));
                }

                return text.Insert(at, sb.ToString());
            case 11: // delete a line
                return RemoveLine(text, at);
            case 12: // duplicate a line (second cpu, repeated eptp, …)
                int start = LineStart(text, at);
                int end = text.IndexOf('\n', start);
                string line = end < 0 ? text[start..] + "\n" : text[start..(end + 1)];
                return text.Insert(LineStart(text, rng.Below(text.Length + 1)), line);
            default: // swap the halves at a line boundary: reorders steps
                int cut = LineStart(text, at);
                return text[cut..] + text[..cut];
        }
    }

    private string ReplaceToken(string text, string replacement)
    {
        int eq = text.Length == 0 ? -1 : text.IndexOf('=', rng.Below(text.Length));
        if (eq < 0)
        {
            return text + replacement;
        }

        int end = eq + 1;
        while (end < text.Length && !char.IsWhiteSpace(text[end]))
        {
            end++;
        }

        return string.Concat(text.AsSpan(0, eq + 1), replacement, text.AsSpan(end));
    }

    private string DuplicateToken(string text)
    {
        int eq = text.Length == 0 ? -1 : text.IndexOf('=', rng.Below(text.Length));
        if (eq < 0)
        {
            return text;
        }

        int start = eq;
        while (start > 0 && !char.IsWhiteSpace(text[start - 1]))
        {
            start--;
        }

        int end = eq;
        while (end < text.Length && !char.IsWhiteSpace(text[end]))
        {
            end++;
        }

        return text.Insert(end, " " + text[start..end]);
    }

    private static int LineStart(string text, int at)
    {
        if (at <= 0)
        {
            return 0;
        }

        int newline = text.LastIndexOf('\n', Math.Min(at, text.Length) - 1);
        return newline + 1;
    }

    private static string RemoveLine(string text, int at)
    {
        int start = LineStart(text, at);
        int end = text.IndexOf('\n', start);
        return end < 0 ? text[..start] : text.Remove(start, end - start + 1);
    }
}
