using System.Text;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Reporting;

/// <summary>One translator's answer as the reports show it: the observation in words, its walk decoded entry by entry, the rules it fired.</summary>
public sealed record ObservationView(string Target, string Summary, IReadOnlyList<string> Walk, IReadOnlyList<string> Rules);

/// <summary>
/// The one place a case result becomes text: the multi-line detail (console, JUnit, TAP), the
/// header lines of a finding file, the trace's observation lines and the sides the HTML report
/// draws. Everything is rendered from the result's typed fields.
/// </summary>
public static class CaseReport
{
    /// <summary>
    /// The step, the signature, each translator's observation and walk, the rules fired, any
    /// diagnostics, and the replay command. For bad input it is only the located errors (the CLI
    /// prints them as FILE:LINE:COLUMN lines).
    /// </summary>
    public static string Detail(CaseResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.Status is CaseStatus.Passed)
        {
            return string.Empty;
        }

        if (result.Status is CaseStatus.BadInput or CaseStatus.InfrastructureFailure)
        {
            return result.Diagnostics ?? string.Empty;
        }

        var sb = new StringBuilder();
        foreach (string line in Lines(result, replay: true))
        {
            sb.Append(line).Append('\n');
        }

        return sb.ToString();
    }

    /// <summary>The detail as lines; a finding file writes its own signature and replay lines, so it leaves those out.</summary>
    public static IEnumerable<string> Lines(CaseResult result, bool replay, bool signature = true)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.Step is { } step)
        {
            yield return $"step {result.StepNumber}, line {step.Line}: {CasePrinter.PrintStep(step)}";
        }

        if (signature && result.Signature is { } text)
        {
            yield return $"signature: {text}";
        }

        foreach (TargetObservation o in result.Observations)
        {
            var sb = new StringBuilder();
            AppendObservation(sb, o, string.Empty);
            foreach (string line in sb.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                yield return line;
            }
        }

        if (result.Diagnostics is { } diagnostics)
        {
            foreach (string line in diagnostics.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                yield return line.TrimEnd('\r');
            }
        }

        if (replay && result.Replay.Length > 0)
        {
            yield return $"replay: {result.Replay}";
        }
    }

    /// <summary>One translator's observation, its walk decoded entry by entry, and the rules it fired (the trace's and the detail's form).</summary>
    public static void AppendObservation(StringBuilder sb, TargetObservation o, string indent)
    {
        ArgumentNullException.ThrowIfNull(sb);
        ArgumentNullException.ThrowIfNull(o);
        ObservationView view = View(o);
        sb.Append(indent).Append(view.Target).Append(": ").Append(view.Summary).Append('\n');
        foreach (string line in view.Walk)
        {
            sb.Append(indent).Append("    ").Append(line).Append('\n');
        }

        if (view.Rules.Count > 0)
        {
            sb.Append(indent).Append("    rules fired: ").Append(string.Join(' ', view.Rules)).Append('\n');
        }
    }

    /// <summary>The observation in words, for the HTML report and the detail.</summary>
    public static ObservationView View(TargetObservation o)
    {
        ArgumentNullException.ThrowIfNull(o);
        var rules = o.Observation.Rules.IsEmpty || o.RuleNames.Count == 0
            ? []
            : o.Observation.Rules.Indices().Where(i => i < o.RuleNames.Count).Select(i => o.RuleNames[i]).ToList();
        return new ObservationView(o.Target, Describe.Observation(o.Observation), [.. Describe.Walk(o.Observation.Walk)], rules);
    }
}
