using System.Text;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// Turns a reduced finding into an xunit test ready to paste: the case text inline, parsed,
/// replayed, and asserted to pass (so the test fails until the bug is fixed, then guards it).
/// </summary>
public static class RegressionTestEmitter
{
    /// <summary>The default expression for the run options in the emitted test; the pasting project provides it.</summary>
    public const string DefaultOptionsExpression = "RegressionTargets.Options()";

    public static string Emit(EptCase reduced, string signature, string? optionsExpression = null)
    {
        ArgumentNullException.ThrowIfNull(reduced);
        ArgumentNullException.ThrowIfNull(signature);
        string hash = FindingFile.HashOf(signature);
        string name = $"Finding_{hash}_{Identifier(signature)}";
        // Only the steps: the header of a finding is for people, the test states the signature itself.
        string text = CasePrinter.Print(reduced with { HeaderComments = [] });
        var sb = new StringBuilder();
        sb.Append("    // Found by eptfuzz; was: ").Append(signature).Append('\n');
        sb.Append("    [Fact]\n");
        sb.Append("    public void ").Append(name).Append("()\n");
        sb.Append("    {\n");
        sb.Append("        const string text = \"\"\"\"\n");
        foreach (string line in text.TrimEnd('\n').Split('\n'))
        {
            sb.Append("            ").Append(line).Append('\n');
        }

        sb.Append("            \"\"\"\";\n");
        sb.Append("        var parsed = EptFuzz.Harness.Cases.CaseParser.Parse(text, \"").Append(name).Append(".ept\");\n");
        sb.Append("        Assert.True(parsed.Succeeded, parsed.ErrorText());\n");
        sb.Append("        var result = EptFuzz.Harness.Running.CaseRunner.Run(parsed.Case, ").Append(optionsExpression ?? DefaultOptionsExpression).Append(");\n");
        sb.Append("        Assert.True(result.Status == EptFuzz.Harness.Running.CaseStatus.Passed, result.Message);\n");
        sb.Append("    }\n");
        return sb.ToString();
    }

    private static string Identifier(string signature)
    {
        // write.gpa|model:violation|impl:ok|kind -> write_gpa_model_violation_impl_ok_kind
        var sb = new StringBuilder(signature.Length);
        foreach (char c in signature)
        {
            sb.Append(char.IsAsciiLetterOrDigit(c) ? c : '_');
        }

        string id = sb.ToString().Trim('_');
        while (id.Contains("__", StringComparison.Ordinal))
        {
            id = id.Replace("__", "_", StringComparison.Ordinal);
        }

        return id.Length > 60 ? id[..60] : id;
    }
}
