using System.Globalization;

namespace EptFuzz.Harness.Comparing;

/// <summary>
/// A stable name for a kind of divergence, used to deduplicate findings and to list known ones:
/// <c>STEP|TARGET:OUTCOME|TARGET:OUTCOME|FIELDS</c>, for example
/// <c>write.gpa|model:violation|impl:ok|kind</c> or <c>read.gva|model:violation|bochs:violation|qual^0x1</c>.
/// Addresses never appear in it, so the same bug found at another address has the same signature.
/// </summary>
public sealed record DivergenceSignature(string Step, string TargetA, string OutcomeA, string TargetB, string OutcomeB, string Fields)
{
    public override string ToString() => $"{Step}|{TargetA}:{OutcomeA}|{TargetB}:{OutcomeB}|{Fields}";

    /// <summary>A short stable hash of the signature text, for file names.</summary>
    public string Hash => HashOf(ToString());

    /// <summary>The file-name hash of a signature's text (FNV-1a 32: stable across processes and machines, unlike string.GetHashCode).</summary>
    public static string HashOf(string signature)
    {
        ArgumentNullException.ThrowIfNull(signature);
        uint h = 2166136261;
        foreach (char c in signature)
        {
            h = (h ^ c) * 16777619;
        }

        return h.ToString("x8", CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// The signature of code under test that failed instead of answering (a crash, a hang, a
    /// protocol breach, broken table accounting): <c>STEP|TARGET:KIND|-:-|DETAIL</c>.
    /// </summary>
    public static DivergenceSignature Fault(string step, string target, string kind, string detail) => new(step, target, kind, "-", "-", detail);

    /// <summary>
    /// Reads a signature's text back (a raw finding's header is the only record of it after a
    /// kill); null when <paramref name="text"/> is not <c>STEP|TARGET:OUTCOME|TARGET:OUTCOME|FIELDS</c>.
    /// </summary>
    public static DivergenceSignature? TryParse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string[] parts = text.Trim().Split('|');
        if (parts.Length != 4 || parts[0].Length == 0)
        {
            return null;
        }

        // A target name may hold a colon (exec:PATH); an outcome word never does.
        int a = parts[1].LastIndexOf(':');
        int b = parts[2].LastIndexOf(':');
        if (a <= 0 || b <= 0)
        {
            return null;
        }

        return new DivergenceSignature(parts[0], parts[1][..a], parts[1][(a + 1)..], parts[2][..b], parts[2][(b + 1)..], parts[3]);
    }

    /// <summary>Field text for a qualification difference: the XOR of the compared bits.</summary>
    public static string DescribeFields(Difference difference, ulong qualificationXor)
    {
        var text = difference.Text();
        return difference.HasFlag(Difference.Qualification)
            ? text.Replace("qual", $"qual^0x{qualificationXor:x}", StringComparison.Ordinal)
            : text;
    }
}
