using System.Globalization;
using System.Numerics;
using System.Text;
using EptFuzz.Contract;

namespace EptFuzz.Harness.Cases;

/// <summary>
/// The spellings of values (case-format.md "Lexical rules"), read and written in one place so
/// the parser and the printer cannot drift apart. Readers never throw: they return false with a
/// message and the offset inside the value where the problem starts.
/// </summary>
internal static class CaseSyntax
{
    /// <summary>Guest-physical addresses that probes may name are below 2^52 (the architectural maximum).</summary>
    public const ulong GpaLimit = 1UL << 52;

    public const ulong PageSize4K = 1UL << 12;

    // ---- numbers -------------------------------------------------------------------------

    public static bool TryNumber(ReadOnlySpan<char> s, out ulong value, out string error)
    {
        value = 0;
        error = "";
        if (s.IsEmpty)
        {
            error = "missing value";
            return false;
        }

        if (s[0] == '-')
        {
            error = $"negative numbers are not allowed: {Quote(s)}";
            return false;
        }

        bool hex = s.Length > 2 && s[0] == '0' && s[1] == 'x';
        ReadOnlySpan<char> digits = hex ? s[2..] : s;
        int radix = hex ? 16 : 10;
        bool previousWasDigit = false;
        foreach (char c in digits)
        {
            if (c == '_')
            {
                // A separator stands between two digits: not first, not last, not doubled.
                if (!previousWasDigit)
                {
                    return NotANumber(s, out error);
                }

                previousWasDigit = false;
                continue;
            }

            int d = DigitValue(c);
            if (d < 0 || d >= radix)
            {
                return NotANumber(s, out error);
            }

            previousWasDigit = true;
            ulong scaled = value * (ulong)radix;
            if (value > ulong.MaxValue / (ulong)radix || scaled > ulong.MaxValue - (ulong)d)
            {
                error = $"number {Quote(s)} does not fit in 64 bits";
                value = 0;
                return false;
            }

            value = scaled + (ulong)d;
        }

        if (!previousWasDigit)
        {
            value = 0;
            return NotANumber(s, out error);
        }

        return true;
    }

    private static bool NotANumber(ReadOnlySpan<char> s, out string error)
    {
        error = $"{Quote(s)} is not a number (decimal, or hex after 0x; '_' may separate digits)";
        return false;
    }

    private static int DigitValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };

    /// <summary>Canonical hex: lowercase after 0x; more than 8 digits are grouped in fours from the right.</summary>
    public static string Hex(ulong value)
    {
        Span<char> text = stackalloc char[MaxHexChars];
        return new string(FormatHex(value, text));
    }

    /// <summary>Appends <see cref="Hex"/>'s text without making a string (the printer writes a case per fuzzing iteration).</summary>
    public static StringBuilder AppendHex(StringBuilder sb, ulong value)
    {
        Span<char> text = stackalloc char[MaxHexChars];
        return sb.Append(FormatHex(value, text));
    }

    // "0x" + 16 digits + 3 group separators.
    private const int MaxHexChars = 21;

    private static ReadOnlySpan<char> FormatHex(ulong value, Span<char> text)
    {
        int digits = value == 0 ? 1 : (67 - BitOperations.LeadingZeroCount(value)) / 4;
        bool grouped = digits > 8;
        int length = 2 + digits + (grouped ? (digits - 1) / 4 : 0);
        int at = length;
        for (int i = 0; i < digits; i++)
        {
            if (grouped && i > 0 && i % 4 == 0)
            {
                text[--at] = '_';
            }

            text[--at] = "0123456789abcdef"[(int)(value & 0xF)];
            value >>= 4;
        }

        text[0] = '0';
        text[1] = 'x';
        return text[..length];
    }

    public static string Decimal(long value) => value.ToString(CultureInfo.InvariantCulture);

    // ---- sizes ---------------------------------------------------------------------------

    public static bool TrySize(ReadOnlySpan<char> s, out ulong value, out string error)
    {
        error = "";
        switch (s)
        {
            case "4K":
                value = PageSize.Size4K.Bytes();
                return true;
            case "2M":
                value = PageSize.Size2M.Bytes();
                return true;
            case "1G":
                value = PageSize.Size1G.Bytes();
                return true;
        }

        if (TryNumber(s, out value, out error))
        {
            return true;
        }

        error = $"{Quote(s)} is not a size (4K, 2M, 1G, or a number of bytes)";
        return false;
    }

    public static string Size(ulong bytes) => bytes switch
    {
        1UL << 12 => "4K",
        1UL << 21 => "2M",
        1UL << 30 => "1G",
        _ => Hex(bytes),
    };

    // ---- booleans and small numbers -------------------------------------------------------

    public static bool TryBool(ReadOnlySpan<char> s, out bool value, out string error)
    {
        value = false;
        if (!TryNumber(s, out ulong n, out error))
        {
            return false;
        }

        if (n > 1)
        {
            error = $"expected 0 or 1, found {Quote(s)}";
            return false;
        }

        value = n == 1;
        return true;
    }

    public static string Bool(bool value) => value ? "1" : "0";

    // ---- permissions ---------------------------------------------------------------------

    // Both permission sets are letter sets: letter i of the alphabet is flag bit i, and the
    // alphabet's order is the canonical printing order.
    private const string EptLetters = "rwxu";
    private const string GuestLetters = "wux";

    public static bool TryPermissions(ReadOnlySpan<char> s, out EptPermissions value, out string error)
    {
        bool ok = TryLetterSet(s, EptLetters, "permission set (letters from r w x u, or none)", "write none for no permission", out int bits, out error);
        value = (EptPermissions)bits;
        return ok;
    }

    /// <summary>Canonical order r w x u, as the spec writes <c>perm=rwxu</c>.</summary>
    public static string Permissions(EptPermissions p) => LetterSet((int)(p & EptPermissions.All), EptLetters);

    public static bool TryGuestPermissions(ReadOnlySpan<char> s, out GuestPagePermissions value, out string error)
    {
        bool ok = TryLetterSet(s, GuestLetters, "guest permission set (letters from w u x, or none)", "write none for a read-only supervisor page", out int bits, out error);
        value = (GuestPagePermissions)bits;
        return ok;
    }

    /// <summary>Canonical order w u x, as the spec writes <c>perm=[w][u][x]</c>.</summary>
    public static string GuestPermissions(GuestPagePermissions p) => LetterSet((int)(p & GuestPagePermissions.All), GuestLetters);

    private static bool TryLetterSet(ReadOnlySpan<char> s, string alphabet, string what, string emptyHint, out int bits, out string error)
    {
        bits = 0;
        error = "";
        if (s.SequenceEqual("none"))
        {
            return true;
        }

        if (s.IsEmpty)
        {
            error = $"empty permissions ({emptyHint})";
            return false;
        }

        foreach (char c in s)
        {
            int index = alphabet.IndexOf(c, StringComparison.Ordinal);
            if (index < 0)
            {
                error = $"{Quote(s)} is not a {what}";
                return false;
            }

            if ((bits & (1 << index)) != 0)
            {
                error = $"permission letter '{c}' appears twice in {Quote(s)}";
                return false;
            }

            bits |= 1 << index;
        }

        return true;
    }

    private static string LetterSet(int bits, string alphabet)
    {
        // Both alphabets have four letters: the 16 sets of each are made once.
        string[] cache = alphabet == EptLetters ? EptSets : alphabet == GuestLetters ? GuestSets : [];
        if ((uint)bits < (uint)cache.Length)
        {
            return cache[bits];
        }

        return MakeLetterSet(bits, alphabet);
    }

    private static readonly string[] EptSets = [.. Enumerable.Range(0, 1 << EptLetters.Length).Select(b => MakeLetterSet(b, EptLetters))];
    private static readonly string[] GuestSets = [.. Enumerable.Range(0, 1 << GuestLetters.Length).Select(b => MakeLetterSet(b, GuestLetters))];

    private static string MakeLetterSet(int bits, string alphabet)
    {
        if (bits == 0)
        {
            return "none";
        }

        var sb = new StringBuilder(alphabet.Length);
        for (int i = 0; i < alphabet.Length; i++)
        {
            if ((bits & (1 << i)) != 0)
            {
                sb.Append(alphabet[i]);
            }
        }

        return sb.ToString();
    }

    // ---- memory types and levels -----------------------------------------------------------

    public static bool TryMemoryType(ReadOnlySpan<char> s, out MemoryType value, out string error)
    {
        error = "";
        switch (s)
        {
            case "UC": value = MemoryType.UC; return true;
            case "WC": value = MemoryType.WC; return true;
            case "WT": value = MemoryType.WT; return true;
            case "WP": value = MemoryType.WP; return true;
            case "WB": value = MemoryType.WB; return true;
        }

        value = default;
        if (TryNumber(s, out ulong n, out _) && n <= 7)
        {
            value = (MemoryType)(byte)n;
            return true;
        }

        error = $"{Quote(s)} is not a memory type (UC WC WT WP WB, or a number 0-7)";
        return false;
    }

    /// <summary>Names for the five defined types; the reserved encodings 2, 3 and 7 as numbers.</summary>
    public static string MemoryTypeName(MemoryType t) => t switch
    {
        Contract.MemoryType.UC => "UC",
        Contract.MemoryType.WC => "WC",
        Contract.MemoryType.WT => "WT",
        Contract.MemoryType.WP => "WP",
        Contract.MemoryType.WB => "WB",
        _ => Decimal((byte)t),
    };

    public static bool TryLevel(ReadOnlySpan<char> s, out EptLevel value, out string error)
    {
        error = "";
        switch (s)
        {
            case "pte": value = EptLevel.Pte; return true;
            case "pde": value = EptLevel.Pde; return true;
            case "pdpte": value = EptLevel.Pdpte; return true;
            case "pml4e": value = EptLevel.Pml4e; return true;
            case "pml5e": value = EptLevel.Pml5e; return true;
        }

        value = default;
        if (TryNumber(s, out ulong n, out _) && n is >= 1 and <= 5)
        {
            value = (EptLevel)(byte)n;
            return true;
        }

        error = $"{Quote(s)} is not a level (1-5, or pte pde pdpte pml4e pml5e)";
        return false;
    }

    public static string Level(EptLevel level) => level switch
    {
        EptLevel.Pte => "pte",
        EptLevel.Pde => "pde",
        EptLevel.Pdpte => "pdpte",
        EptLevel.Pml4e => "pml4e",
        EptLevel.Pml5e => "pml5e",
        _ => Decimal((byte)level),
    };

    public static string Invept(InveptType type) => type switch
    {
        InveptType.SingleContext => "single",
        InveptType.Global => "global",
        _ => Decimal((byte)type),
    };

    /// <summary>Error names as the spec writes them (the <see cref="ApiResult"/> member names).</summary>
    public static string Result(ApiResult result) => result == ApiResult.Ok ? "ok" : result.ToString();

    public static bool TryResult(ReadOnlySpan<char> s, out ApiResult value)
    {
        foreach (ApiResult r in Enum.GetValues<ApiResult>())
        {
            if (s.SequenceEqual(Result(r)))
            {
                value = r;
                return true;
            }
        }

        value = default;
        return false;
    }

    // ---- quoting -------------------------------------------------------------------------

    /// <summary>A token for a message: back-quoted, shortened, control characters shown as '?'.</summary>
    public static string Quote(ReadOnlySpan<char> s)
    {
        int n = Math.Min(s.Length, CaseLimits.MaxQuotedLength);
        var sb = new StringBuilder(n + 5);
        sb.Append('`');
        foreach (char c in s[..n])
        {
            sb.Append(char.IsControl(c) || char.IsSurrogate(c) ? '?' : c);
        }

        if (n < s.Length)
        {
            sb.Append("...");
        }

        sb.Append('`');
        return sb.ToString();
    }
}
