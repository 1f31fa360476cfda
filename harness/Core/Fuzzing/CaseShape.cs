using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// The order rules between steps (case-format.md "Steps"; the parser's CaseRules), checked and
/// restored without printing: <c>cpu</c> first and at most once, an <c>eptp</c> before anything
/// else, <c>gmap</c>/<c>gedit</c> only while guest paging is on. Mutants are repaired; the
/// reducer rejects candidates that break them.
/// </summary>
public static class CaseShape
{
    public static bool IsValid(IReadOnlyList<Step> steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        bool eptp = false, paging = false;
        for (int i = 0; i < steps.Count; i++)
        {
            switch (steps[i])
            {
                case CpuStep when i > 0:
                    return false;
                case CpuStep:
                    continue;
                case EptpStep:
                    eptp = true;
                    continue;
            }

            if (!eptp)
            {
                return false;
            }

            switch (steps[i])
            {
                case GuestStep g:
                    paging = g.Paging;
                    break;
                case GMapStep or GEditStep when !paging:
                    return false;
            }
        }

        return true;
    }

    /// <summary>Drops or adds the fewest steps that make the order valid again.</summary>
    public static void Repair(List<Step> steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        for (int i = steps.Count - 1; i > 0; i--)
        {
            if (steps[i] is CpuStep)
            {
                steps.RemoveAt(i);
            }
        }

        int first = steps.Count > 0 && steps[0] is CpuStep ? 1 : 0;
        if (steps.Count > first && steps[first] is not EptpStep)
        {
            steps.Insert(first, new EptpStep());
        }

        bool paging = false;
        for (int i = 0; i < steps.Count; i++)
        {
            switch (steps[i])
            {
                case GuestStep g:
                    paging = g.Paging;
                    break;
                case GMapStep or GEditStep when !paging:
                    steps.RemoveAt(i);
                    i--;
                    break;
            }
        }
    }
}
