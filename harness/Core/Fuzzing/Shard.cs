using System.Globalization;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// <c>--shard K/N</c>: machine K of N (1-based). Shard K runs exactly the case indices i with
/// i mod N = K - 1, so N machines with the same campaign seed never run the same generated case.
/// </summary>
public readonly record struct Shard(int Index, int Count)
{
    public static Shard Single => new(1, 1);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Index}/{Count}");

    /// <summary>The global case index of this shard's <paramref name="local"/>-th case.</summary>
    public ulong CaseIndex(ulong local) => (local * (ulong)Count) + (ulong)(Index - 1);

    public static bool TryParse(string text, out Shard shard, out string error)
    {
        shard = Single;
        error = string.Empty;
        int slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0
            || !int.TryParse(text.AsSpan(0, slash), NumberStyles.None, CultureInfo.InvariantCulture, out int k)
            || !int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int n))
        {
            error = $"--shard expects K/N (for example 2/8), found '{text}'";
            return false;
        }

        if (n < 1 || k < 1 || k > n)
        {
            error = $"--shard {text}: K must be 1 to N and N at least 1";
            return false;
        }

        shard = new Shard(k, n);
        return true;
    }
}
