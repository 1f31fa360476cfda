using EptFuzz.Contract;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;

namespace EptFuzz.Cli;

/// <summary>
/// What an exception that reaches the top of a command means, as an exit code and one line. An
/// emulator that cannot run and a file system that fails (a full disk, a permission) are
/// infrastructure (3); a campaign's own files that cannot be read are bad input (2). Anything else
/// is a defect of the tool and keeps its stack trace.
/// </summary>
internal static class Failures
{
    public static int? ExitCodeOf(Exception e) => e switch
    {
        CampaignUsageException => ExitCodes.BadInput,
        TargetFailureException => ExitCodes.Infrastructure,
        IOException or UnauthorizedAccessException => ExitCodes.Infrastructure,
        _ => null,
    };

    public static string Describe(Exception e) => e switch
    {
        IOException or UnauthorizedAccessException => $"infrastructure: {e.Message}",
        _ => e.Message,
    };
}
