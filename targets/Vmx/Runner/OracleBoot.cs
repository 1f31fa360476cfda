using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Image;

namespace EptFuzz.Targets.Vmx.Runner;

/// <summary>
/// Boots an image with the watchdog and the retry policy: a hung, crashed or silent emulator is an
/// infrastructure failure; it is retried once and then reported (never turned into a finding).
/// </summary>
public static class OracleBoot
{
    public static OracleReport Run(IEmulator emulator, DiskImage image)
    {
        if (emulator.Unavailable() is string why)
        {
            throw new TargetFailureException(emulator.Name, why);
        }

        string? firstFailure = null;
        for (int attempt = 1; attempt <= 2; attempt++)
        {
            string dir = Directory.CreateTempSubdirectory("eptfuzz-vmx-").FullName;
            try
            {
                var outcome = emulator.Boot(image, dir);
                var report = OracleReport.Parse(outcome.Console);
                string? failure = Failure(outcome, report);
                if (failure is null)
                {
                    return report;
                }

                firstFailure ??= failure;
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }

        throw new TargetFailureException(emulator.Name, $"{firstFailure} (failed twice)");
    }

    private static string? Failure(EmulatorOutcome outcome, OracleReport report)
    {
        if (outcome.Process.TimedOut)
        {
            return $"the emulator hung: killed after {outcome.Process.Elapsed.TotalSeconds:F1} s; {Tail(outcome)}";
        }

        return report.Problem is string problem ? $"{problem}; {Tail(outcome)}" : null;
    }

    private static string Tail(EmulatorOutcome outcome)
    {
        string text = (outcome.Console + "\n" + outcome.Process.StandardError).Trim();
        return "output ends: " + (text.Length > 600 ? text[^600..] : text);
    }
}
